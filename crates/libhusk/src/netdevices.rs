//! `linux.netDevices`: move host network devices into the container's new network namespace,
//! keeping their permanent global addresses (the kernel drops addresses on a move) and setting
//! them up, as config-linux.md "Network Devices" asks.
//!
//! Runs in husk, in the host network namespace, while the container init waits for `Go`.

mod netlink;

use std::collections::HashMap;
use std::os::fd::AsFd;

use oci_spec::runtime::LinuxNetDevice;
use rustix::fs::{Mode, OFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::error::{Context, Error, Result};
use netlink::*;

/// Config checks, before anything is made: a new network namespace to move into, and names the
/// kernel would accept (its dev_valid_name).
pub fn check(devices: Option<&HashMap<String, LinuxNetDevice>>, new_net: bool) -> Result<()> {
    let Some(devices) = devices.filter(|d| !d.is_empty()) else { return Ok(()) };
    if !new_net {
        return Err(Error::field("linux.netDevices", "needs a new network namespace"));
    }
    let mut seen = HashMap::new();
    let mut sorted: Vec<_> = devices.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (host, dev) in sorted {
        let field = format!("linux.netDevices.{host}");
        valid_name(host).map_err(|e| Error::field(&field, e))?;
        if let Some(name) = dev.name() {
            valid_name(name).map_err(|e| Error::field(format!("{field}.name"), e))?;
        }
        let name = dev.name().as_deref().unwrap_or(host);
        if name.contains("%d") {
            continue;
        }
        if let Some(other) = seen.insert(name, host) {
            return Err(Error::field(&field, format!("name {name:?} is also the name of {other:?} in the container")));
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("invalid interface name {name:?}"));
    }
    if name.len() > 15 {
        return Err(format!("interface name {name:?} is longer than 15 bytes"));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("interface name {name:?} has '/', ':' or a space"));
    }
    Ok(())
}

/// A permanent global address of a device, as RTM_GETADDR reported it.
#[derive(Debug)]
struct Addr {
    family: u8,
    prefixlen: u8,
    flags: u32,
    scope: u8,
    /// IFA_LOCAL, IFA_ADDRESS and IFA_BROADCAST as they were.
    attrs: Vec<(u16, Vec<u8>)>,
}

struct Move<'a> {
    field: String,
    index: i32,
    name: &'a str,
    addrs: Vec<Addr>,
}

/// Move every device of `devices` into the network namespace of `pid`. Every host device is looked
/// up before the first moves, so a missing one fails the create with nothing moved.
pub fn move_into(devices: &HashMap<String, LinuxNetDevice>, pid: i32) -> Result<()> {
    let mut host = Socket::open().ctx(|| "linux.netDevices")?;
    let mut sorted: Vec<_> = devices.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut moves = Vec::new();
    for (host_name, dev) in sorted {
        let field = format!("linux.netDevices.{host_name}");
        let index = link_by_name(&mut host, host_name).ctx(|| format!("{field}: host device"))?;
        let addrs = addresses(&mut host, index).ctx(|| format!("{field}: list addresses"))?;
        moves.push(Move { field, index, name: dev.name().as_deref().unwrap_or(host_name), addrs });
    }
    let mut inner = socket_in(pid)?;
    // Names taken in the container are found before any move: a failed rename after the kernel
    // moved a device would leave it in the container's namespace, with the container destroyed.
    for m in moves.iter().filter(|m| !m.name.contains("%d")) {
        if link_by_name(&mut inner, m.name).is_ok() {
            return Err(Error::os(format!("{}: move into the container as {}", m.field, m.name), libc::EEXIST));
        }
    }
    let mut moved = Vec::new();
    for m in &moves {
        // One request moves and renames; the kernel fails with EEXIST on a name taken in the
        // container, unless the name has %d and it picks a free one.
        let req = Request::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(m.index, 0, 0))
            .attr_u32(IFLA_NET_NS_PID, pid as u32)
            .attr_str(IFLA_IFNAME, m.name);
        host.call(req).ctx(|| format!("{}: move into the container as {}", m.field, m.name))?;
        let index =
            find_moved(&mut inner, m, &moved).ctx(|| format!("{}: find {} in the container", m.field, m.name))?;
        moved.push(index);
        for a in &m.addrs {
            let mut req = Request::new(
                RTM_NEWADDR,
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                &ifaddrmsg(a.family, a.prefixlen, a.flags as u8, a.scope, index as u32),
            );
            for (ty, v) in &a.attrs {
                req = req.attr(*ty, v);
            }
            inner.call(req.attr_u32(IFA_FLAGS, a.flags)).ctx(|| format!("{}: restore an address", m.field))?;
        }
        let req = Request::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, IFF_UP, IFF_UP));
        inner.call(req).ctx(|| format!("{}: set up", m.field))?;
    }
    Ok(())
}

/// The ifindex of the link named `name` (ENODEV if there is none).
fn link_by_name(s: &mut Socket, name: &str) -> Result<i32> {
    let reply = s.call(Request::new(RTM_GETLINK, NLM_F_ACK, &ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, name))?;
    match reply.iter().find(|(ty, p)| *ty == RTM_NEWLINK && p.len() >= IFINFOMSG_LEN) {
        Some((_, p)) => Ok(u32_at(p, 4) as i32),
        None => Err(Error::msg("no link in the kernel's answer")),
    }
}

/// All links of the socket's namespace: (ifindex, name).
fn links(s: &mut Socket) -> Result<Vec<(i32, String)>> {
    let reply = s.call(Request::new(RTM_GETLINK, NLM_F_DUMP, &ifinfomsg(0, 0, 0)))?;
    let mut out = Vec::new();
    for (_, p) in reply.iter().filter(|(ty, p)| *ty == RTM_NEWLINK && p.len() >= IFINFOMSG_LEN) {
        if let Some((_, v)) = attrs(&p[IFINFOMSG_LEN..]).into_iter().find(|(t, _)| *t == IFLA_IFNAME) {
            let name = String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
            out.push((u32_at(p, 4) as i32, name));
        }
    }
    Ok(out)
}

/// The permanent, global-scope addresses of device `index`, any family.
fn addresses(s: &mut Socket, index: i32) -> Result<Vec<Addr>> {
    let reply = s.call(Request::new(RTM_GETADDR, NLM_F_DUMP, &ifaddrmsg(0, 0, 0, 0, 0)))?;
    let mut out = Vec::new();
    for (_, p) in reply.iter().filter(|(ty, p)| *ty == RTM_NEWADDR && p.len() >= IFADDRMSG_LEN) {
        if u32_at(p, 4) as i32 != index {
            continue; // without strict checking the kernel dumps every device's addresses
        }
        let mut a = Addr { family: p[0], prefixlen: p[1], flags: p[2] as u32, scope: p[3], attrs: Vec::new() };
        for (ty, v) in attrs(&p[IFADDRMSG_LEN..]) {
            match ty {
                // The 8-bit ifa_flags cannot hold the newer flags; IFA_FLAGS has all of them.
                IFA_FLAGS => a.flags = u32_at(v, 0),
                IFA_LOCAL | IFA_ADDRESS | IFA_BROADCAST => a.attrs.push((ty, v.to_vec())),
                _ => {}
            }
        }
        if a.flags & IFA_F_PERMANENT != 0 && a.scope == RT_SCOPE_UNIVERSE {
            out.push(a);
        }
    }
    Ok(out)
}

/// The moved device's ifindex in the container. A name with %d is resolved by the kernel, so
/// look for the old ifindex (kept unless taken) or else a new link matching the template.
fn find_moved(s: &mut Socket, m: &Move, taken: &[i32]) -> Result<i32> {
    if !m.name.contains("%d") {
        return link_by_name(s, m.name);
    }
    let all = links(s)?;
    let fits = |n: &str| matches_template(m.name, n);
    if all.iter().any(|(i, n)| *i == m.index && fits(n)) {
        return Ok(m.index);
    }
    match all.iter().find(|(i, n)| !taken.contains(i) && fits(n)) {
        Some((i, _)) => Ok(*i),
        None => Err(Error::msg("no such device")),
    }
}

/// Does `name` fit `template` (one `%d`): same text around it and digits in its place?
fn matches_template(template: &str, name: &str) -> bool {
    let Some((pre, post)) = template.split_once("%d") else { return template == name };
    name.len() > pre.len() + post.len()
        && name.starts_with(pre)
        && name.ends_with(post)
        && name[pre.len()..name.len() - post.len()].bytes().all(|b| b.is_ascii_digit())
}

/// A netlink socket in the network namespace of `pid`: a socket stays in the namespace it was
/// made in, so enter that namespace, make it, and come back. husk is single-threaded here.
fn socket_in(pid: i32) -> Result<Socket> {
    let open =
        |p: &str| rustix::fs::open(p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ctx(|| format!("open {p}"));
    let own = open("/proc/self/ns/net").ctx(|| "linux.netDevices")?;
    let theirs = open(&format!("/proc/{pid}/ns/net")).ctx(|| "linux.netDevices")?;
    move_into_link_name_space(theirs.as_fd(), Some(LinkNameSpaceType::Network))
        .ctx(|| "linux.netDevices: enter the container's network namespace")?;
    let sock = Socket::open();
    move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::Network))
        .ctx(|| "linux.netDevices: return to the host network namespace")?;
    sock.ctx(|| "linux.netDevices: in the container")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devs(pairs: &[(&str, Option<&str>)]) -> HashMap<String, LinuxNetDevice> {
        pairs
            .iter()
            .map(|(k, n)| {
                let mut d = LinuxNetDevice::default();
                d.set_name(n.map(String::from));
                (k.to_string(), d)
            })
            .collect()
    }

    #[test]
    fn netdev_check_needs_new_netns() {
        let d = devs(&[("eth0", None)]);
        let e = check(Some(&d), false).unwrap_err();
        assert_eq!(e.to_string(), "linux.netDevices: needs a new network namespace");
        assert!(check(Some(&d), true).is_ok());
        assert!(check(Some(&HashMap::new()), false).is_ok());
        assert!(check(None, false).is_ok());
    }

    #[test]
    fn netdev_check_names() {
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-bytes-xx"] {
            let e = check(Some(&devs(&[(bad, None)])), true).unwrap_err();
            assert!(e.to_string().starts_with(&format!("linux.netDevices.{bad}: ")), "{e}");
            let e = check(Some(&devs(&[("eth0", Some(bad))])), true).unwrap_err();
            assert!(e.to_string().starts_with("linux.netDevices.eth0.name: "), "{e}");
        }
        assert!(check(Some(&devs(&[("fifteen-bytes-x", Some("eth%d"))])), true).is_ok());
        let e = check(Some(&devs(&[("a", Some("eth0")), ("b", Some("eth0"))])), true).unwrap_err();
        assert!(e.to_string().starts_with("linux.netDevices.b: "), "{e}");
        assert!(check(Some(&devs(&[("a", Some("eth%d")), ("b", Some("eth%d"))])), true).is_ok());
    }

    #[test]
    fn netdev_template_match() {
        assert!(matches_template("eth%d", "eth0"));
        assert!(matches_template("eth%d", "eth12"));
        assert!(matches_template("c%dx", "c3x"));
        assert!(!matches_template("eth%d", "eth"));
        assert!(!matches_template("eth%d", "ethx"));
        assert!(!matches_template("eth%d", "lo"));
        assert!(matches_template("eth7", "eth7"));
    }
}
