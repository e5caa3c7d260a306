//! A tiny rtnetlink client: just the few fixed requests `netdevices` makes. Hand-written because a
//! netlink crate would bring far more than these ~200 lines save.
//!
//! Numbers are from the kernel's uapi headers (linux/netlink.h, rtnetlink.h, if_link.h,
//! if_addr.h), which never change; a test checks them against libc's.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::error::{Context, Error, Result};

pub const NLMSG_HDRLEN: usize = 16;
pub const IFINFOMSG_LEN: usize = 16;
pub const IFADDRMSG_LEN: usize = 8;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22;

pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_NET_NS_PID: u16 = 19;
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_BROADCAST: u16 = 4;
pub const IFA_FLAGS: u16 = 8;
pub const IFA_F_PERMANENT: u32 = 0x80;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const IFF_UP: u32 = 0x1;

/// The top bits of an attribute type are the nested/byte-order flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(align4(buf.len()), 0);
}

/// One request: header, fixed body (ifinfomsg or ifaddrmsg), then attributes.
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    pub fn new(ty: u16, flags: u16, body: &[u8]) -> Request {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length: set by `finish`
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence number: set by `finish`
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id 0: the message is for the kernel
        buf.extend_from_slice(body);
        pad(&mut buf);
        Request { buf }
    }

    /// Append an rtattr: 2-byte length (header + data, unpadded), 2-byte type, data padded to 4.
    pub fn attr(mut self, ty: u16, data: &[u8]) -> Request {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    pub fn attr_u32(self, ty: u16, v: u32) -> Request {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// Interface names go to the kernel NUL-terminated.
    pub fn attr_str(self, ty: u16, s: &str) -> Request {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(ty, &data)
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

pub fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut b = [0u8; IFINFOMSG_LEN];
    // family (AF_UNSPEC), pad and device type stay 0.
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

pub fn ifaddrmsg(family: u8, prefixlen: u8, flags: u8, scope: u8, index: u32) -> [u8; IFADDRMSG_LEN] {
    let mut b = [family, prefixlen, flags, scope, 0, 0, 0, 0];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

/// One message of a reply.
#[derive(Debug, PartialEq)]
pub struct Message<'a> {
    pub ty: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Split what one recv returned into messages; a length that does not fit is an error, not a panic.
pub fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(Error::msg(format!("netlink: bad message length {len}")));
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        out.push(Message { ty, seq: u32_at(buf, 8), payload: &buf[NLMSG_HDRLEN..len] });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// The attributes after a fixed body; stops at the first malformed one.
pub fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

pub fn u32_at(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at + 4) {
        Some(b) => u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// The errno in an NLMSG_ERROR payload (positive; 0 is an ack).
pub fn error_code(payload: &[u8]) -> Result<i32> {
    match payload.get(0..4) {
        Some(b) => Ok(-i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(Error::msg("netlink: short error message")),
    }
}

/// A NETLINK_ROUTE socket in the network namespace it was created in.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    pub fn open() -> Result<Socket> {
        // rustix's `None` protocol on a netlink socket is NETLINK_ROUTE (0).
        let fd = rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)
            .ctx(|| "netlink socket")?;
        Ok(Socket { fd, seq: 0 })
    }

    /// Send `req` and collect the payloads of the reply (type, bytes) until the kernel's ack, its
    /// error, or the end of a dump. A kernel error comes back with its errno.
    pub fn call(&mut self, req: Request) -> Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = req.finish(seq);
        rustix::net::send(&self.fd, &bytes, SendFlags::empty()).ctx(|| "netlink send")?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty()).ctx(|| "netlink recv")?;
            for m in messages(&buf[..n])? {
                if m.seq != seq {
                    continue; // a late answer to an earlier request
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        return match error_code(m.payload)? {
                            0 => Ok(out),
                            e => Err(Error::from(Errno::from_raw_os_error(e))),
                        }
                    }
                    ty => out.push((ty, m.payload.to_vec())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netdev_constants_match_libc() {
        assert_eq!(NLMSG_ERROR as i32, libc::NLMSG_ERROR);
        assert_eq!(NLMSG_DONE as i32, libc::NLMSG_DONE);
        assert_eq!(NLM_F_REQUEST as i32, libc::NLM_F_REQUEST);
        assert_eq!(NLM_F_ACK as i32, libc::NLM_F_ACK);
        assert_eq!(NLM_F_DUMP as i32, libc::NLM_F_DUMP);
        assert_eq!(NLM_F_CREATE as i32, libc::NLM_F_CREATE);
        assert_eq!(NLM_F_EXCL as i32, libc::NLM_F_EXCL);
        assert_eq!(RTM_NEWLINK, libc::RTM_NEWLINK);
        assert_eq!(RTM_GETLINK, libc::RTM_GETLINK);
        assert_eq!(RTM_NEWADDR, libc::RTM_NEWADDR);
        assert_eq!(RTM_GETADDR, libc::RTM_GETADDR);
        assert_eq!(IFLA_IFNAME, libc::IFLA_IFNAME);
        assert_eq!(IFLA_NET_NS_PID, libc::IFLA_NET_NS_PID);
        assert_eq!(IFA_ADDRESS, libc::IFA_ADDRESS);
        assert_eq!(IFA_LOCAL, libc::IFA_LOCAL);
        assert_eq!(IFA_BROADCAST, libc::IFA_BROADCAST);
        assert_eq!(IFA_FLAGS, libc::IFA_FLAGS);
        assert_eq!(IFA_F_PERMANENT, libc::IFA_F_PERMANENT);
        assert_eq!(RT_SCOPE_UNIVERSE, libc::RT_SCOPE_UNIVERSE);
        assert_eq!(IFF_UP as i32, libc::IFF_UP);
        assert_eq!(NLMSG_HDRLEN, std::mem::size_of::<libc::nlmsghdr>());
        assert_eq!(IFINFOMSG_LEN, std::mem::size_of::<libc::ifinfomsg>());
    }

    #[test]
    fn netdev_request_header_and_attr_alignment() {
        let req = Request::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(7, IFF_UP, IFF_UP))
            .attr_str(IFLA_IFNAME, "eth7") // 4 + 5 bytes: padded to 12
            .attr_u32(IFLA_NET_NS_PID, 42);
        let b = req.finish(9);
        assert_eq!(b.len(), NLMSG_HDRLEN + IFINFOMSG_LEN + 12 + 8);
        assert_eq!(u32_at(&b, 0) as usize, b.len());
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), RTM_NEWLINK);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(&b, 8), 9);
        assert_eq!(u32_at(&b, 16 + 4), 7);
        let a = attrs(&b[NLMSG_HDRLEN + IFINFOMSG_LEN..]);
        assert_eq!(a, vec![(IFLA_IFNAME, &b"eth7\0"[..]), (IFLA_NET_NS_PID, &42u32.to_ne_bytes()[..])]);
        // The unpadded length is in the attribute header, the padding after it.
        assert_eq!(u16::from_ne_bytes([b[32], b[33]]), 9);
        assert_eq!(&b[41..44], &[0, 0, 0]);
    }

    fn reply(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(payload);
        pad(&mut b);
        b
    }

    #[test]
    fn netdev_ack_and_error_parse() {
        let mut buf = reply(NLMSG_ERROR, 3, &[0u8; 4 + NLMSG_HDRLEN]);
        let mut err = (-libc::EEXIST).to_ne_bytes().to_vec();
        err.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
        buf.extend(reply(NLMSG_ERROR, 4, &err));
        buf.extend(reply(RTM_NEWADDR, 5, &[1, 2, 3])); // padded to 20 in the buffer
        buf.extend(reply(NLMSG_DONE, 5, &[0; 4]));
        let m = messages(&buf).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!((m[0].ty, m[0].seq, error_code(m[0].payload).unwrap()), (NLMSG_ERROR, 3, 0));
        assert_eq!(error_code(m[1].payload).unwrap(), libc::EEXIST);
        assert_eq!(m[2].payload, &[1, 2, 3]);
        assert_eq!((m[3].ty, m[3].seq), (NLMSG_DONE, 5));
    }

    #[test]
    fn netdev_malformed_input_is_an_error_not_a_panic() {
        let mut buf = reply(NLMSG_DONE, 1, &[0; 4]);
        buf[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(messages(&buf).is_err());
        assert!(error_code(&[1, 2]).is_err());
        assert!(attrs(&[200, 0, 1, 0, 9]).is_empty());
        assert!(attrs(&[2, 0, 1, 0]).is_empty());
    }

    #[test]
    fn netdev_socket_dumps_host_links() {
        let mut s = Socket::open().unwrap();
        let links = s.call(Request::new(RTM_GETLINK, NLM_F_DUMP, &ifinfomsg(0, 0, 0))).unwrap();
        assert!(links.iter().all(|(ty, _)| *ty == RTM_NEWLINK));
        let names: Vec<&[u8]> = links
            .iter()
            .flat_map(|(_, p)| attrs(&p[IFINFOMSG_LEN..]))
            .filter(|(t, _)| *t == IFLA_IFNAME)
            .map(|(_, v)| v)
            .collect();
        assert!(names.contains(&&b"lo\0"[..]), "{names:?}");
    }
}
