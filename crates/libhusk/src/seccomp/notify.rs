//! `SCMP_ACT_NOTIFY`: the notify fd goes to the agent listening at `linux.seccomp.listenerPath`,
//! with the container process state (config-linux.md, "The Container Process State"), in one
//! `sendmsg` on a fresh SOCK_STREAM connection, the fd as SCM_RIGHTS and the JSON as payload, as
//! runc sends it:
//!
//! `{"ociVersion":…,"fds":["seccompFd"],"pid":…,"metadata":…,"state":{"ociVersion":…,"id":…,
//! "status":"creating","pid":…,"bundle":…,"annotations":{…}}}`

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{
    connect, sendmsg, socket_with, AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use serde::Serialize;

use crate::error::{Context, Error, Result};

/// The name of the one fd sent, in `fds`.
pub const SECCOMP_FD_NAME: &str = "seccompFd";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessState<'a> {
    oci_version: &'a str,
    fds: [&'a str; 1],
    pid: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    metadata: &'a str,
    state: OciState<'a>,
}

/// The spec's state (runtime.md), without runc's `state`-command extras.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciState<'a> {
    oci_version: &'a str,
    id: &'a str,
    status: &'a str,
    pid: i32,
    bundle: &'a Path,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

/// What the agent is told about the container.
pub struct Container<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub annotations: &'a BTreeMap<String, String>,
}

/// The JSON payload for a process `pid` (as seen by husk) of `container`.
pub fn payload(container: &Container, pid: i32, metadata: Option<&str>) -> Vec<u8> {
    let state = ProcessState {
        oci_version: crate::config::OCI_VERSION,
        fds: [SECCOMP_FD_NAME],
        pid,
        metadata: metadata.unwrap_or(""),
        state: OciState {
            oci_version: container.oci_version,
            id: container.id,
            status: container.status,
            pid,
            bundle: container.bundle,
            annotations: container.annotations,
        },
    };
    serde_json::to_vec(&state).unwrap_or_default()
}

/// Connect to the agent, before the container process exists: an agent that is not there
/// fails `create` (or `exec`) before anything is made, in runc's words.
pub fn connect_agent(listener: &Path) -> Result<OwnedFd> {
    let field = "linux.seccomp.listenerPath";
    let sock = socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .ctx(|| format!("{field}: socket"))?;
    let addr = SocketAddrUnix::new(listener).ctx(|| format!("{field}: {}", listener.display()))?;
    connect(&sock, &addr).map_err(|e| {
        Error::from(e)
            .context(format!("connect {}", listener.display()))
            .context("failed to connect with seccomp agent specified in the seccomp profile")
            .context(field)
    })?;
    Ok(sock)
}

/// Send `payload` with `fd` over the connection [`connect_agent`] made, and close it: one state
/// per connection, as the spec requires.
pub fn send_to_agent(sock: OwnedFd, listener: &Path, payload: &[u8], fd: BorrowedFd<'_>) -> Result<()> {
    let what = || format!("linux.seccomp.listenerPath: {}", listener.display());
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !cmsg.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Error::msg("seccomp notify: no room for the fd"));
    }
    let sent = sendmsg(sock.as_fd(), &[IoSlice::new(payload)], &mut cmsg, SendFlags::NOSIGNAL)
        .ctx(|| format!("{}: send", what()))?;
    if sent != payload.len() {
        return Err(Error::msg(format!("{}: short send ({sent} of {} bytes)", what(), payload.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_runcs_shape() {
        let ann = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let c = Container {
            oci_version: "1.0.2",
            id: "c1",
            status: "creating",
            bundle: Path::new("/b"),
            annotations: &ann,
        };
        let v: serde_json::Value = serde_json::from_slice(&payload(&c, 42, Some("MKNOD=/dev/null"))).unwrap();
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "MKNOD=/dev/null");
        assert_eq!(v["ociVersion"], crate::config::OCI_VERSION);
        assert_eq!(
            v["state"],
            serde_json::json!({"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{"k":"v"}})
        );
        let empty = BTreeMap::new();
        let c = Container { annotations: &empty, ..c };
        let v: serde_json::Value = serde_json::from_slice(&payload(&c, 1, None)).unwrap();
        assert!(v.get("metadata").is_none() && v["state"].get("annotations").is_none());
    }
}
