//! The container's process: its init (set up inside the namespaces, waits for `start`, execs).

pub mod exec;
pub mod init;
pub mod rlimits;
pub mod sched;
pub mod user;
