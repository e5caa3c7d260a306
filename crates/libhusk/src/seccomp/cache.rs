//! Compiled filters by profile (crun's idea): building Docker's default profile with libseccomp
//! costs about a millisecond and a half, reading it back a few microseconds.
//!
//! One file per filter, `<hex key>.bpf`, in a directory under husk's `--root`. The key is the
//! SHA-256 of everything the program depends on: the profile as parsed, the libseccomp version
//! (which syscalls it knows), the kernel release, the architecture and the version of the ENOSYS
//! stub husk prepends (enosys.rs). A cryptographic hash,
//! because a profile crafted to collide with another would otherwise be handed that one's filter.
//!
//! Safe under concurrent use: entries are immutable, written to a temp file and renamed into
//! place, so a reader sees a whole entry or none; two writers of one key write the same bytes.
//! Bounded: past [`MAX_ENTRIES`] the oldest entries are removed when a new one is added. Entries
//! are checked on read (header and key, program shape) and a bad one is simply recompiled.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::error::{Context, Error, Result};

/// The cache directory's name under `--root`: not a valid container id, so it cannot clash.
pub const DIR_NAME: &str = ".cache:seccomp";
pub const MAX_ENTRIES: usize = 128;
const MAGIC: &[u8; 8] = b"HUSKBPF1";
const HEADER: usize = 8 + 32;

pub type Key = [u8; 32];

/// The cache key of a profile on this system.
pub fn key(seccomp: &LinuxSeccomp) -> Result<Key> {
    key_for(seccomp, super::enosys::VERSION)
}

fn key_for(seccomp: &LinuxSeccomp, stub_version: u32) -> Result<Key> {
    let profile = serde_json::to_vec(seccomp).map_err(|e| Error::msg(format!("linux.seccomp: encode: {e}")))?;
    let uname = rustix::system::uname();
    let mut h = Sha256::new();
    for part in [
        b"husk seccomp cache 2".as_slice(),
        &stub_version.to_le_bytes(),
        profile.as_slice(),
        super::profile::libseccomp_version().as_bytes(),
        uname.release().to_bytes(),
        std::env::consts::ARCH.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    Ok(h.finalize().into())
}

fn hex(key: &Key) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache { dir: dir.to_path_buf() }
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}.bpf", hex(key)))
    }

    /// The cached program for `key`, if there is a sound one.
    pub fn get(&self, key: &Key) -> Option<Vec<libc::sock_filter>> {
        if !self.trusted() {
            return None;
        }
        let mut file = std::fs::File::open(self.path(key)).ok()?;
        let mut data = Vec::with_capacity(HEADER + 4096 * 8);
        Read::by_ref(&mut file).take((HEADER + 4096 * 8 + 1) as u64).read_to_end(&mut data).ok()?;
        if data.len() <= HEADER || &data[..8] != MAGIC || data[8..HEADER] != key[..] {
            return None;
        }
        super::kernel::program_from_bytes(&data[HEADER..])
    }

    /// Only a directory that we own and nobody else can write to: an entry planted there would
    /// become some container's filter.
    fn trusted(&self) -> bool {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(m) => m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0,
            Err(_) => false,
        }
    }

    /// Store `program` (libseccomp's export) under `key`.
    pub fn put(&self, key: &Key, program: &[u8]) -> Result<()> {
        match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::from(e).context(format!("create {}", self.dir.display()))),
        }
        if !self.trusted() {
            return Err(Error::msg(format!("{}: not owned by us or writable by others", self.dir.display())));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let tmp = self.dir.join(format!(".tmp.{}.{}", std::process::id(), now.as_nanos()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(key)?;
            f.write_all(program)?;
            std::fs::rename(&tmp, self.path(key))
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::from(e).context(format!("write {}", self.path(key).display())));
        }
        self.prune()
    }

    /// Keep at most MAX_ENTRIES: remove the oldest (by modification time) beyond that.
    fn prune(&self) -> Result<()> {
        let dir = std::fs::read_dir(&self.dir).ctx(|| format!("read {}", self.dir.display()))?;
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = dir
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".bpf"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if entries.len() <= MAX_ENTRIES {
            return Ok(());
        }
        entries.sort();
        for (_, path) in &entries[..entries.len() - MAX_ENTRIES] {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// Number of entries (for tests and `features`-style reporting).
    pub fn len(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".bpf")).count())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(n: usize) -> LinuxSeccomp {
        serde_json::from_str(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":{n}}}]}}"#
        ))
        .unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-seccomp-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn key_depends_on_the_profile() {
        assert_eq!(key(&profile(1)).unwrap(), key(&profile(1)).unwrap());
        assert_ne!(key(&profile(1)).unwrap(), key(&profile(2)).unwrap());
        // A program made with another version of the ENOSYS stub is never served.
        assert_ne!(key_for(&profile(1), 1).unwrap(), key_for(&profile(1), 2).unwrap());
    }

    #[test]
    fn hit_after_put_and_bad_entries_are_misses() {
        let d = tmp("hit");
        let c = Cache::new(&d);
        let k = key(&profile(3)).unwrap();
        assert!(c.get(&k).is_none());
        let prog =
            super::super::kernel::program_to_bytes(&[libc::sock_filter { code: 6, jt: 0, jf: 0, k: 0x7fff_0000 }]);
        c.put(&k, &prog).unwrap();
        assert_eq!(c.get(&k).unwrap().len(), 1);
        // Truncated, or stored under another key: a miss, never a wrong filter.
        let path = c.path(&k);
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..data.len() - 1]).unwrap();
        assert!(c.get(&k).is_none());
        let k2 = key(&profile(4)).unwrap();
        std::fs::write(c.path(&k2), &data).unwrap();
        assert!(c.get(&k2).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp("perm");
        let c = Cache::new(&d);
        let k = key(&profile(5)).unwrap();
        let prog = super::super::kernel::program_to_bytes(&[libc::sock_filter { code: 6, jt: 0, jf: 0, k: 0 }]);
        c.put(&k, &prog).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(c.get(&k).is_none());
        assert!(c.put(&k, &prog).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bounded_and_safe_under_concurrent_writers() {
        let d = tmp("bound");
        let prog = super::super::kernel::program_to_bytes(&[libc::sock_filter { code: 6, jt: 0, jf: 0, k: 0 }; 64]);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (d, prog) = (&d, &prog);
                s.spawn(move || {
                    let c = Cache::new(d);
                    for i in 0..(MAX_ENTRIES / 2 + 10) {
                        // Every thread writes the same keys, racing one another.
                        let k = key(&profile(i)).unwrap();
                        c.put(&k, prog).unwrap();
                        let got = c.get(&k);
                        assert!(got.is_none() || got.as_ref().unwrap().len() == 64, "thread {t}: torn entry");
                    }
                });
            }
        });
        let c = Cache::new(&d);
        assert!(c.len() <= MAX_ENTRIES + 4, "{} entries", c.len());
        for i in 0..(MAX_ENTRIES / 2 + 10) {
            c.put(&key(&profile(1000 + i)).unwrap(), &prog).unwrap();
        }
        assert!(c.len() <= MAX_ENTRIES, "{} entries", c.len());
        let leftovers = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
