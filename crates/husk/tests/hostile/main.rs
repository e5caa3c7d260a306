//! The standing adversarial suite (issue 19): what a hostile config, image or container tries
//! against the host, one module per category. Every case asserts the refusal (a one-line error
//! naming the field or path, a non-zero exit, no panic), that the host is unchanged
//! ([`host::HostSnapshot`]: sysctls, a canary process and file outside the bundle, the host's
//! mount table outside the test dirs, the cgroup hierarchies' top level) and that nothing leaked
//! (the leak audit of `common/audit.rs`).
//!
//! The same cases run against runc (`HUSK_BIN=/usr/sbin/runc cargo test --release -p husk --test
//! hostile`); where runc 1.1.5 differs the case says so and asserts husk's behaviour only when
//! `common::is_husk()`.
//!
//! | module | what |
//! | --- | --- |
//! | `ids` | uids/gids out of range in config, process.json and `exec -u` |
//! | `configs` | malformed and oversized config.json / process.json, non-regular files, bad fds |
//! | `rootfs` | hostile rootfs layouts: symlinked /proc, /dev, /dev/console, mount destinations |
//! | `host` | host-wide settings a config reaches for: sysctls, cgroupsPath at a hierarchy root |
//! | `processes` | hostile processes inside the container: /proc/PID/exe of the runtime, races |
//! | `seccomp` | profiles that cost too much: huge programs, many rules |

#[path = "../common/mod.rs"]
mod common;

mod configs;
mod host;
mod ids;
mod processes;
mod rootfs;
mod seccomp;
