//! Linux security modules: AppArmor (`process.apparmorProfile`) and SELinux
//! (`process.selinuxLabel`, `linux.mountLabel`).
//!
//! The process labels are written to the init's own `attr/exec` files, which the kernel applies
//! at the next execve: the container program starts confined, and nothing husk runs before it
//! does. Those files are opened in a private procfs that husk mounts itself and checks
//! (`rootfs::procfs`), with no symlink or mount crossing allowed on the way, so a fake or
//! symlinked `/proc` in the image (CVE-2019-16884, CVE-2019-19921, CVE-2023-28642) or a racing
//! mount (CVE-2025-52881) cannot swallow the write and leave the process unconfined.
//!
//! Asked for on a host without the module, each is an error naming the field: silently running
//! a container unconfined is the one outcome a runtime must not produce.
//!
//! For any process that joins the container (`create`'s init, `exec`): [`check_process`] in husk
//! before anything starts, [`ExecLabels::open`] in the process while it still has CAP_SYS_ADMIN
//! (before the capability drop), [`ExecLabels::apply`] right before execve.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::rootfs::procfs;

/// AppArmor is on when the module is enabled and its securityfs directory is there (runc's test).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").is_dir()
        && std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.starts_with(b"Y"))
}

/// SELinux is on when selinuxfs is mounted.
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Refuse, by field, labels this host cannot apply. Done by `create` before anything is made.
pub fn check(spec: &Spec) -> Result<()> {
    if let Some(p) = spec.process() {
        check_process(p)?;
    }
    if mount_label(spec).is_some() && !selinux_enabled() {
        return Err(Error::field("linux.mountLabel", "SELinux is not enabled on this host"));
    }
    Ok(())
}

/// The process labels alone (for `exec`, whose process.json may name its own).
pub fn check_process(p: &oci_spec::runtime::Process) -> Result<()> {
    if non_empty(p.apparmor_profile()).is_some() && !apparmor_enabled() {
        return Err(Error::field("process.apparmorProfile", "AppArmor is not enabled on this host"));
    }
    if non_empty(p.selinux_label()).is_some() && !selinux_enabled() {
        return Err(Error::field("process.selinuxLabel", "SELinux is not enabled on this host"));
    }
    Ok(())
}

/// `linux.mountLabel`, if set.
pub fn mount_label(spec: &Spec) -> Option<&str> {
    spec.linux().as_ref().and_then(|l| non_empty(l.mount_label()))
}

/// The process's exec labels with their attr files already open: opened before the capability
/// drop (mounting the private procfs needs CAP_SYS_ADMIN), written right before execve.
#[derive(Default)]
pub struct ExecLabels {
    writes: Vec<(&'static str, OwnedFd, Vec<u8>)>,
}

impl ExecLabels {
    /// Open what `process` asks for. Runs in the container's init, in its namespaces.
    pub fn open(process: &oci_spec::runtime::Process) -> Result<ExecLabels> {
        let apparmor = non_empty(process.apparmor_profile());
        let selinux = non_empty(process.selinux_label());
        if apparmor.is_none() && selinux.is_none() {
            return Ok(ExecLabels::default());
        }
        let proc = procfs::open_private()?;
        // `self` is a symlink, which the checked walk refuses: name our pid as this procfs sees it.
        let me = PathBuf::from(rustix::process::getpid().as_raw_nonzero().to_string());
        let mut writes = Vec::new();
        if let Some(profile) = apparmor {
            let field = "process.apparmorProfile";
            // Kernels since 5.8 have a directory per module; older ones only the shared files.
            let fd = match open_attr(&proc, &me.join("attr/apparmor/exec")) {
                Err(Errno::NOENT) => open_attr(&proc, &me.join("attr/exec")),
                other => other,
            }
            .map_err(|e| Error::os(format!("{field}: open attr/apparmor/exec"), e.raw_os_error()))?;
            writes.push((field, fd, format!("exec {profile}").into_bytes()));
        }
        if let Some(label) = selinux {
            let field = "process.selinuxLabel";
            let fd = open_attr(&proc, &me.join("attr/exec"))
                .map_err(|e| Error::os(format!("{field}: open attr/exec"), e.raw_os_error()))?;
            writes.push((field, fd, label.as_bytes().to_vec()));
        }
        Ok(ExecLabels { writes })
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Set the labels for the next execve.
    pub fn apply(&self) -> Result<()> {
        for (field, fd, data) in &self.writes {
            let shown = String::from_utf8_lossy(data);
            match rustix::io::write(fd, data) {
                Ok(n) if n == data.len() => {}
                Ok(_) => return Err(Error::msg(format!("{field}: short write of {shown:?}"))),
                Err(e) => return Err(Error::os(format!("{field}: set {shown:?}"), e.raw_os_error())),
            }
        }
        Ok(())
    }
}

fn open_attr(proc: &OwnedFd, path: &Path) -> std::result::Result<OwnedFd, Errno> {
    let fd = procfs::open_beneath(proc.as_fd(), path, OFlags::WRONLY)?;
    // Beneath a procfs we mounted, with no mount crossed: still, check what we hold.
    let st = rustix::fs::fstatfs(&fd)?;
    if st.f_type as u32 != libc::PROC_SUPER_MAGIC as u32 {
        return Err(Errno::XDEV);
    }
    Ok(fd)
}

/// The fsconfig option that labels a new mount (`context=`). fsconfig takes the value whole, so
/// the commas of an MCS label need no quoting.
pub fn mount_label_option(label: &str) -> crate::rootfs::mount_options::Data {
    crate::rootfs::mount_options::Data::Value("context".into(), label.into())
}

/// Filesystems runc does not label: their labels come from policy (proc, sysfs, cgroups) or
/// from setfilecon (mqueue).
pub fn labels_fstype(fstype: &str) -> bool {
    !matches!(fstype, "proc" | "sysfs" | "cgroup" | "cgroup2" | "mqueue" | "bind" | "rbind")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Spec {
        let s = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}{extra}}}}}"#
        );
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn absent_modules_are_errors_naming_the_field() {
        if !apparmor_enabled() {
            let e = check(&spec(r#","apparmorProfile":"husk-test""#)).unwrap_err().to_string();
            assert_eq!(e, "process.apparmorProfile: AppArmor is not enabled on this host");
        }
        if !selinux_enabled() {
            let e = check(&spec(r#","selinuxLabel":"system_u:system_r:container_t:s0""#)).unwrap_err().to_string();
            assert!(e.starts_with("process.selinuxLabel:"), "{e}");
        }
        assert!(check(&spec(r#","apparmorProfile":"""#)).is_ok(), "empty means unset");
    }

    #[test]
    fn mount_labels_skip_policy_labelled_filesystems() {
        assert!(labels_fstype("tmpfs") && labels_fstype("devpts"));
        assert!(!labels_fstype("proc") && !labels_fstype("sysfs") && !labels_fstype("mqueue"));
        assert_eq!(
            mount_label_option("system_u:object_r:container_file_t:s0:c1,c2"),
            crate::rootfs::mount_options::Data::Value(
                "context".into(),
                "system_u:object_r:container_file_t:s0:c1,c2".into()
            )
        );
    }
}
