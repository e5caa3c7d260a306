//! Reading the small files every call asks about (a container's `state.json`, its init's
//! `/proc/PID/stat`, the freezer state) in as few system calls as reading allows.
//!
//! `std::fs::read` and `read_to_string` ask the file its size first (statx, lseek) and, for a
//! procfs or cgroupfs file that says 0, read it in growing steps from 32 bytes: a
//! `/proc/PID/stat` took nine calls. Here a file is opened, read into a buffer sized for it
//! until a read returns nothing, and closed: four calls when it fits. `list` makes three of
//! these per container.
//!
//! Every read is bounded ([`LIMIT`]) and opens without blocking: a path a user or an image
//! points at a fifo or at `/dev/zero` ends in an error, not in a hang or in all the memory there
//! is. [`read_document`] is the reader of the JSON files a caller names (config.json,
//! `--process`, `update -r`): a regular file or nothing.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// The most any read here takes in: 16 MiB. No real file of these kinds comes near it: a
/// state file is 2-3 KiB, a config 5-50 KiB, and the largest configs (Kubernetes pods with many
/// annotations, Docker's seccomp profile inline) stay under the 1.5 MiB that etcd stores per
/// object. runc and crun read without a bound (a config that is `/dev/zero` takes all the
/// memory there is); 16 MiB is read and refused in milliseconds.
pub const LIMIT: usize = 16 << 20;

/// O_NONBLOCK: opening a fifo waits for a writer otherwise (a regular file ignores the flag);
/// O_NOCTTY: a terminal opened by a session leader (the init, after setsid) must not become its
/// controlling terminal.
const READ_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::CLOEXEC).union(OFlags::NONBLOCK).union(OFlags::NOCTTY);

/// `path`, relative to `dir`, whole. `expected` is the size it usually has: the buffer starts
/// there and grows when the file is larger (up to [`LIMIT`]: EFBIG beyond).
pub fn read_at(dir: BorrowedFd<'_>, path: impl AsRef<Path>, expected: usize) -> std::result::Result<Vec<u8>, Errno> {
    let fd = rustix::fs::openat(dir, path.as_ref(), READ_FLAGS, Mode::empty())?;
    read_all(&fd, expected, LIMIT)
}

/// `path` whole (see [`read_at`]).
pub fn read(path: impl AsRef<Path>, expected: usize) -> std::result::Result<Vec<u8>, Errno> {
    read_at(CWD, path, expected)
}

/// [`read`] of a text file (an invalid UTF-8 one reads as EILSEQ).
pub fn read_string(path: impl AsRef<Path>, expected: usize) -> std::result::Result<String, Errno> {
    String::from_utf8(read(path, expected)?).map_err(|_| Errno::ILSEQ)
}

/// A JSON document the caller names (config.json, `exec --process`, `update -r`, a checkpoint's
/// descriptors.json), whole: a regular file of at most [`LIMIT`] bytes. A fifo, a device, a
/// directory or a socket is refused by what it is, before a byte is read; errors start with the
/// path. The same system calls as `std::fs::read` (open, fstat, read to the end, close).
pub fn read_document(path: &Path) -> Result<Vec<u8>> {
    let at = || path.display().to_string();
    let fd = rustix::fs::open(path, READ_FLAGS, Mode::empty()).map_err(|e| Error::from(e).context(at()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::from(e).context(at()))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(Error::msg(format!("{}: not a regular file but {}", at(), kind_name(kind))));
    }
    let size = usize::try_from(st.st_size).unwrap_or(usize::MAX);
    if size > LIMIT {
        return Err(too_large(&at(), Some(size)));
    }
    read_all(&fd, size, LIMIT).map_err(|e| match e {
        // It grew after the fstat.
        Errno::FBIG => too_large(&at(), None),
        e => Error::from(e).context(format!("read {}", at())),
    })
}

/// A JSON document from a stream (`update -r -`): at most [`LIMIT`] bytes, and an error at the
/// first byte no JSON text has (a control character other than tab, newline and carriage
/// return, which JSON allows only escaped; invalid UTF-8), not after reading all of it: binary
/// input or `/dev/zero` is refused in its first read.
pub fn read_document_from(mut input: impl std::io::Read, what: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from(e).context(format!("read {what}"))),
        };
        if data.len() + n > LIMIT {
            return Err(too_large(what, None));
        }
        let start = data.len();
        data.extend_from_slice(&chunk[..n]);
        if let Some(i) = data[start..].iter().position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) {
            return Err(not_json(what, start + i, data[start + i]));
        }
        // A character split across two reads is completed by the next one.
        if let Err(e) = std::str::from_utf8(&data) {
            if e.error_len().is_some() {
                return Err(not_json(what, e.valid_up_to(), data[e.valid_up_to()]));
            }
        }
    }
    if std::str::from_utf8(&data).is_err() {
        return Err(Error::msg(format!("{what}: invalid JSON: it ends inside a UTF-8 character")));
    }
    Ok(data)
}

fn not_json(what: &str, at: usize, byte: u8) -> Error {
    Error::msg(format!("{what}: invalid JSON: byte {byte:#04x} at offset {at} cannot be in a JSON text"))
}

/// `size`: the file's size where known (a stream's is not).
fn too_large(what: &str, size: Option<usize>) -> Error {
    let size = size.map(|s| format!(" ({s} bytes)")).unwrap_or_default();
    Error::msg(format!("{what}: larger{size} than the {} MiB husk reads as JSON", LIMIT >> 20))
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Fifo => "a fifo",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symlink",
        _ => "an unknown kind of file",
    }
}

fn read_all(fd: &OwnedFd, expected: usize, limit: usize) -> std::result::Result<Vec<u8>, Errno> {
    // One byte more than expected: a file of exactly the expected size is read, then its end
    // seen, without growing the buffer in between.
    let mut data = Vec::with_capacity(expected.clamp(1, limit) + 1);
    loop {
        if data.len() > limit {
            return Err(Errno::FBIG);
        }
        if data.len() == data.capacity() {
            data.reserve(data.capacity());
        }
        match rustix::io::read(fd.as_fd(), rustix::buffer::spare_capacity(&mut data)) {
            Ok(0) => return Ok(data),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("husk-smallfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_files_smaller_and_larger_than_expected() {
        let dir = temp_dir("sizes");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for len in [0, 1, 7, 8, 9, 100, 4096, 10_000] {
            let file = dir.join(format!("f{len}"));
            std::fs::write(&file, &data[..len]).unwrap();
            for expected in [0, 8, 64, 20_000] {
                assert_eq!(read(&file, expected).unwrap(), &data[..len], "len {len}, expected {expected}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_procfs_files_that_report_no_size() {
        let stat = read_string("/proc/self/stat", 16).unwrap();
        assert!(stat.starts_with(&format!("{} (", std::process::id())), "{stat}");
        assert!(stat.ends_with('\n'));
    }

    #[test]
    fn reads_are_bounded_and_never_wait() {
        // /dev/zero never ends: the bound ends the read.
        assert_eq!(read("/dev/zero", 64), Err(Errno::FBIG));
        let dir = temp_dir("fifo");
        let fifo = dir.join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        // No writer: opened without waiting for one, read as empty.
        assert_eq!(read(&fifo, 64), Ok(vec![]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn documents_are_regular_files_of_bounded_size() {
        let dir = temp_dir("doc");
        std::fs::write(dir.join("c.json"), b"{}").unwrap();
        assert_eq!(read_document(&dir.join("c.json")).unwrap(), b"{}");
        let fifo = dir.join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        for (name, what) in [("fifo", "a fifo"), ("zero", "a character device"), ("", "a directory")] {
            let e = read_document(&dir.join(name)).unwrap_err().to_string();
            assert!(e.ends_with(&format!("not a regular file but {what}")), "{e}");
        }
        let big = std::fs::File::create(dir.join("big")).unwrap();
        big.set_len(LIMIT as u64 + 1).unwrap();
        let e = read_document(&dir.join("big")).unwrap_err().to_string();
        assert!(e.contains("than the 16 MiB husk reads"), "{e}");
        let e = read_document(&dir.join("nope")).unwrap_err().to_string();
        assert!(e.ends_with("nope: no such file or directory"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn streams_fail_at_the_first_byte_json_cannot_have() {
        assert_eq!(read_document_from(&b"{\"a\":\t1}\r\n"[..], "stdin").unwrap(), b"{\"a\":\t1}\r\n");
        assert_eq!(read_document_from("{\"é\": 1}".as_bytes(), "stdin").unwrap(), "{\"é\": 1}".as_bytes());
        // /dev/zero: refused at its first byte, after one read.
        let e = read_document_from(std::fs::File::open("/dev/zero").unwrap(), "stdin").unwrap_err().to_string();
        assert_eq!(e, "stdin: invalid JSON: byte 0x00 at offset 0 cannot be in a JSON text");
        let e = read_document_from(&b"{\"a\": \"\xff\"}"[..], "stdin").unwrap_err().to_string();
        assert!(e.contains("byte 0xff at offset 7"), "{e}");
        let e = read_document_from(&b"{\"a\": \"\xc3"[..], "stdin").unwrap_err().to_string();
        assert!(e.contains("inside a UTF-8 character"), "{e}");
        // Endless spaces (valid JSON bytes): the bound ends it.
        let e = read_document_from(std::io::repeat(b' '), "stdin").unwrap_err().to_string();
        assert!(e.contains("than the 16 MiB husk reads"), "{e}");
    }

    #[test]
    fn says_why_a_file_cannot_be_read() {
        assert_eq!(read("/nonexistent/file", 64), Err(Errno::NOENT));
        assert_eq!(read("/proc/self", 64), Err(Errno::ISDIR));
        let dir = temp_dir("utf8");
        std::fs::write(dir.join("bad"), [0xff, 0xfe]).unwrap();
        assert_eq!(read_string(dir.join("bad"), 8), Err(Errno::ILSEQ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
