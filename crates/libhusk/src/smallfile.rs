//! Reading the small files every call asks about (a container's `state.json`, its init's
//! `/proc/PID/stat`, the freezer state) in as few system calls as reading allows.
//!
//! `std::fs::read` and `read_to_string` ask the file its size first (statx, lseek) and, for a
//! procfs or cgroupfs file that says 0, read it in growing steps from 32 bytes: a
//! `/proc/PID/stat` took nine calls. Here a file is opened, read into a buffer sized for it
//! until a read returns nothing, and closed: four calls when it fits. `list` makes three of
//! these per container.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;

/// `path`, relative to `dir`, whole. `expected` is the size it usually has: the buffer starts
/// there and grows when the file is larger.
pub fn read_at(dir: BorrowedFd<'_>, path: impl AsRef<Path>, expected: usize) -> Result<Vec<u8>, Errno> {
    let fd = rustix::fs::openat(dir, path.as_ref(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    read_all(&fd, expected)
}

/// `path` whole (see [`read_at`]).
pub fn read(path: impl AsRef<Path>, expected: usize) -> Result<Vec<u8>, Errno> {
    read_at(CWD, path, expected)
}

/// [`read`] of a text file (an invalid UTF-8 one reads as EILSEQ).
pub fn read_string(path: impl AsRef<Path>, expected: usize) -> Result<String, Errno> {
    String::from_utf8(read(path, expected)?).map_err(|_| Errno::ILSEQ)
}

fn read_all(fd: &OwnedFd, expected: usize) -> Result<Vec<u8>, Errno> {
    // One byte more than expected: a file of exactly the expected size is read, then its end
    // seen, without growing the buffer in between.
    let mut data = Vec::with_capacity(expected.max(1) + 1);
    loop {
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
    fn says_why_a_file_cannot_be_read() {
        assert_eq!(read("/nonexistent/file", 64), Err(Errno::NOENT));
        assert_eq!(read("/proc/self", 64), Err(Errno::ISDIR));
        let dir = temp_dir("utf8");
        std::fs::write(dir.join("bad"), [0xff, 0xfe]).unwrap();
        assert_eq!(read_string(dir.join("bad"), 8), Err(Errno::ILSEQ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
