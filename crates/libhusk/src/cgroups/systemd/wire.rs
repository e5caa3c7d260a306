//! The D-Bus connection itself: a unix socket, the EXTERNAL authentication, whole messages in
//! and out (rustbus marshals and parses them). Ours rather than rustbus's `DuplexConn`, which
//! authenticates as `getuid()`: inside a user namespace (husk run by rootless Podman) that is
//! the namespace's 0, while the bus sees the user's uid on the socket and refuses.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rustbus::message_builder::MarshalledMessage;
use rustbus::wire::unmarshal::{unmarshal_dynamic_header, unmarshal_header, unmarshal_next_message, HEADER_LEN};
use rustbus::wire::util::parse_u32;

use crate::error::{Error, Result};

/// A bus message may be 128 MiB; systemd's replies to husk are a few hundred bytes.
const MAX_MESSAGE: usize = 1 << 27;

pub struct Conn {
    stream: UnixStream,
    serial: u32,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::msg(format!("systemd: {what}: {e}"))
}

impl Conn {
    /// Connect to the bus at `path` and authenticate as `uid`, the uid the bus sees on our
    /// socket (`userns::outer_uid`).
    pub fn connect(path: &Path, uid: u32, timeout: Duration) -> Result<Conn> {
        let what = format!("connect to {}", path.display());
        let mut stream = UnixStream::connect(path).map_err(io(&what))?;
        stream.set_read_timeout(Some(timeout)).map_err(io(&what))?;
        stream.set_write_timeout(Some(timeout)).map_err(io(&what))?;
        let hex: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
        stream.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes()).map_err(io(&what))?;
        let reply = read_line(&mut stream).map_err(io(&what))?;
        if !reply.starts_with("OK ") {
            return Err(Error::msg(format!("systemd: {what}: authentication as uid {uid} refused ({reply})")));
        }
        stream.write_all(b"BEGIN\r\n").map_err(io(&what))?;
        Ok(Conn { stream, serial: 0 })
    }

    /// Send `m`; its serial, which the reply names.
    pub fn send(&mut self, m: &MarshalledMessage, what: &str) -> Result<u32> {
        self.serial += 1;
        let mut buf = Vec::with_capacity(128 + m.get_buf().len());
        rustbus::wire::marshal::marshal(m, self.serial, &mut buf)
            .map_err(|e| Error::msg(format!("systemd: {what}: {e:?}")))?;
        buf.extend_from_slice(m.get_buf());
        self.stream.write_all(&buf).map_err(io(what))?;
        Ok(self.serial)
    }

    /// The next whole message, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration, what: &str) -> Result<MarshalledMessage> {
        let bad = |e| Error::msg(format!("systemd: {what}: bad message: {e:?}"));
        self.stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1)))).map_err(io(what))?;
        // The fixed header, then the length of the header fields: what says how long it all is.
        let mut buf = vec![0u8; HEADER_LEN + 4];
        self.stream.read_exact(&mut buf).map_err(io(what))?;
        let (_, header) = unmarshal_header(&buf, 0).map_err(bad)?;
        let (_, fields_len) = parse_u32(&buf[HEADER_LEN..], header.byteorder).map_err(bad)?;
        let fields_end = HEADER_LEN + 4 + fields_len as usize;
        let total = fields_end.div_ceil(8) * 8 + header.body_len as usize;
        if total > MAX_MESSAGE {
            return Err(Error::msg(format!("systemd: {what}: a message of {total} bytes")));
        }
        buf.resize(total, 0);
        self.stream.read_exact(&mut buf[HEADER_LEN + 4..]).map_err(io(what))?;
        let (hdr_len, header) = unmarshal_header(&buf, 0).map_err(bad)?;
        let (dyn_len, dynheader) = unmarshal_dynamic_header(&header, &buf, hdr_len).map_err(bad)?;
        let (_, msg) = unmarshal_next_message(&header, dynheader, &buf, hdr_len + dyn_len).map_err(bad)?;
        Ok(msg)
    }
}

fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") && line.len() < 512 {
        stream.read_exact(&mut byte)?;
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}
