//! The few systemd Manager calls the driver makes (messages built and parsed by rustbus, sent
//! over wire.rs's connection): start a transient unit and wait
//! for its job, set properties, stop a unit, read the manager's own cgroup. Over the system bus
//! to PID 1, or for rootless husk over the user's session bus to the user's manager. Only
//! `--systemd-cgroup` reaches this file: the cgroupfs path never opens a D-Bus connection.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustbus::message_builder::{MarshalledMessage, MessageType};
use rustbus::wire::unmarshal::traits::Variant;
use rustbus::wire::ObjectPath;
use rustbus::MessageBuilder;

use super::wire::Conn;
use crate::error::{Error, Result};
use crate::userns::outer_uid;

/// The variant types of the properties husk sets (in a module of its own: the macro's code
/// names `Result` unqualified).
mod val {
    rustbus::dbus_variant_sig!(Val, Bool => bool; U64 => u64; Str => String; U32s => Vec<u32>; Bytes => Vec<u8>);
}
pub use val::Val;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a start or stop job may take (runc waits up to 30 s too).
const JOB_LIMIT: Duration = Duration::from_secs(30);

pub type Props = Vec<(String, Val)>;

pub struct Systemd {
    conn: Conn,
}

/// The system bus (runc does not read DBUS_SYSTEM_BUS_ADDRESS either).
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// The user's session bus, as runc finds it: `$DBUS_SESSION_BUS_ADDRESS`, else
/// `$XDG_RUNTIME_DIR/bus`, else `/run/user/UID/bus` (UID as the host knows us: inside rootless
/// Podman husk is 0).
fn session_bus() -> Result<PathBuf> {
    if let Some(addr) = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok().filter(|a| !a.is_empty()) {
        // One address, or the first of a `;` list, `unix:path=...` (what systemd's user bus is).
        let path = addr.split(';').find_map(|a| {
            a.strip_prefix("unix:")?.split(',').find_map(|kv| kv.strip_prefix("path=").map(PathBuf::from))
        });
        return path.ok_or_else(|| {
            Error::msg(format!("systemd: $DBUS_SESSION_BUS_ADDRESS {addr:?}: husk knows only unix:path= addresses"))
        });
    }
    let path = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("bus"),
        None => PathBuf::from(format!("/run/user/{}/bus", outer_uid())),
    };
    if !path.exists() {
        return Err(Error::msg(format!(
            "systemd: no user session bus at {} (rootless --systemd-cgroup needs the user's systemd manager: a \
             login session or `loginctl enable-linger`; or set DBUS_SESSION_BUS_ADDRESS)",
            path.display()
        )));
    }
    Ok(path)
}

impl Systemd {
    /// PID 1's manager over the system bus, or with `user` the caller's own manager.
    pub fn connect(user: bool) -> Result<Systemd> {
        let path = if user { session_bus()? } else { PathBuf::from(SYSTEM_BUS) };
        let mut s = Systemd { conn: Conn::connect(&path, outer_uid(), JOB_LIMIT)? };
        s.call(rustbus::standard_messages::hello(), "hello")?;
        // JobRemoved tells when a unit's start or stop has finished; systemd sends its signals
        // to subscribed clients, and the bus routes them to matching ones.
        let mut m = MessageBuilder::new()
            .call("AddMatch")
            .with_interface("org.freedesktop.DBus")
            .on("/org/freedesktop/DBus")
            .at("org.freedesktop.DBus")
            .build();
        let rule = format!("type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'");
        m.body.push_param(rule.as_str()).map_err(|e| Error::msg(format!("systemd: AddMatch: {e:?}")))?;
        s.call(m, "AddMatch")?;
        s.call(s.manager("Subscribe"), "Subscribe")?;
        Ok(s)
    }

    fn manager(&self, member: &str) -> MarshalledMessage {
        MessageBuilder::new().call(member).with_interface(MANAGER).on(PATH).at(DEST).build()
    }

    /// Send `m` and return its reply; signals that arrive meanwhile go to `seen`.
    fn call_collecting(
        &mut self,
        m: MarshalledMessage,
        what: &str,
        seen: &mut Vec<MarshalledMessage>,
    ) -> Result<MarshalledMessage> {
        let serial = self.conn.send(&m, what)?;
        let deadline = Instant::now() + JOB_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::msg(format!("systemd: {what}: no reply after {} s", JOB_LIMIT.as_secs())));
            }
            let reply = self.conn.recv(left, what)?;
            if reply.dynheader.response_serial != Some(serial) {
                if reply.typ == MessageType::Signal {
                    seen.push(reply);
                }
                continue;
            }
            if reply.typ == MessageType::Error {
                let name = reply.dynheader.error_name.clone().unwrap_or_default();
                let text = reply.body.parser().get::<String>().unwrap_or_default();
                return Err(Error::msg(format!("systemd: {what}: {name}: {text}")));
            }
            return Ok(reply);
        }
    }

    fn call(&mut self, m: MarshalledMessage, what: &str) -> Result<MarshalledMessage> {
        let mut ignored = Vec::new();
        self.call_collecting(m, what, &mut ignored)
    }

    /// Run a unit job (`StartTransientUnit`, `StopUnit`) and wait for its JobRemoved signal;
    /// the result must be "done".
    fn job(&mut self, m: MarshalledMessage, what: &str) -> Result<()> {
        let mut seen = Vec::new();
        let reply = self.call_collecting(m, what, &mut seen)?;
        let job: ObjectPath<String> =
            reply.body.parser().get().map_err(|e| Error::msg(format!("systemd: {what}: bad reply: {e:?}")))?;
        let job = job.as_ref().to_owned();
        let deadline = Instant::now() + JOB_LIMIT;
        loop {
            for s in seen.drain(..) {
                if s.dynheader.member.as_deref() != Some("JobRemoved") {
                    continue;
                }
                let Ok((_id, path, unit, result)) = s.body.parser().get4::<u32, ObjectPath<String>, String, String>()
                else {
                    continue;
                };
                if path.as_ref() == job {
                    return match result.as_str() {
                        "done" => Ok(()),
                        other => Err(Error::msg(format!("systemd: {what}: job for {unit} ended: {other}"))),
                    };
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::msg(format!("systemd: {what}: job {job} not done after {} s", JOB_LIMIT.as_secs())));
            }
            let m = self.conn.recv(left, what)?;
            if m.typ == MessageType::Signal {
                seen.push(m);
            }
        }
    }

    /// The manager's own cgroup (`/user.slice/user-1000.slice/user@1000.service` for a user's):
    /// the units of a user's manager live below it.
    pub fn control_group(&mut self) -> Result<String> {
        let what = "read the manager's ControlGroup";
        let mut m = MessageBuilder::new()
            .call("Get")
            .with_interface("org.freedesktop.DBus.Properties")
            .on(PATH)
            .at(DEST)
            .build();
        let e = |e| Error::msg(format!("systemd: {what}: {e:?}"));
        m.body.push_param(MANAGER).map_err(e)?;
        m.body.push_param("ControlGroup").map_err(e)?;
        let reply = self.call(m, what)?;
        let v: Variant = reply.body.parser().get().map_err(|e| Error::msg(format!("systemd: {what}: {e:?}")))?;
        v.get::<String>().map_err(|e| Error::msg(format!("systemd: {what}: {e:?}")))
    }

    pub fn start_transient_unit(&mut self, unit: &str, props: &Props) -> Result<()> {
        let what = format!("start {unit}");
        let mut m = self.manager("StartTransientUnit");
        let aux: Vec<(String, Vec<(String, Val)>)> = Vec::new();
        let e = |e| Error::msg(format!("systemd: {what}: {e:?}"));
        m.body.push_param(unit).map_err(e)?;
        m.body.push_param("replace").map_err(e)?;
        m.body.push_param(props).map_err(e)?;
        m.body.push_param(&aux).map_err(e)?;
        self.job(m, &what)
    }

    pub fn set_unit_properties(&mut self, unit: &str, props: &Props) -> Result<()> {
        let what = format!("set properties of {unit}");
        let mut m = self.manager("SetUnitProperties");
        let e = |e| Error::msg(format!("systemd: {what}: {e:?}"));
        m.body.push_param(unit).map_err(e)?;
        m.body.push_param(true).map_err(e)?;
        m.body.push_param(props).map_err(e)?;
        self.call(m, &what).map(|_| ())
    }

    /// Move `pid` into the unit's cgroup. The user's manager may do it where the user could not
    /// (the source and the unit's cgroup meet only in a cgroup of root's): it asks PID 1.
    pub fn attach_processes_to_unit(&mut self, unit: &str, pid: u32) -> Result<()> {
        let what = format!("attach process {pid} to {unit}");
        let mut m = self.manager("AttachProcessesToUnit");
        let e = |e| Error::msg(format!("systemd: {what}: {e:?}"));
        m.body.push_param(unit).map_err(e)?;
        m.body.push_param("").map_err(e)?;
        m.body.push_param(vec![pid]).map_err(e)?;
        self.call(m, &what).map(|_| ())
    }

    /// Stop the unit and wait for it; a unit that is gone already is not an error.
    pub fn stop_unit(&mut self, unit: &str) -> Result<()> {
        let what = format!("stop {unit}");
        let mut m = self.manager("StopUnit");
        let e = |e| Error::msg(format!("systemd: {what}: {e:?}"));
        m.body.push_param(unit).map_err(e)?;
        m.body.push_param("replace").map_err(e)?;
        match self.job(m, &what) {
            Err(e) if e.message().contains("NoSuchUnit") => Ok(()),
            r => r,
        }?;
        // A unit that failed stays loaded until reset; its name must be free for a new one.
        let mut m = self.manager("ResetFailedUnit");
        if m.body.push_param(unit).is_ok() {
            let _ = self.call(m, "reset-failed");
        }
        Ok(())
    }
}
