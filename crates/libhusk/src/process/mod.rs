//! The container's processes: the init (set up inside the namespaces, waits for `start`, execs)
//! and processes exec'd into a running container (join its namespaces, exec).

pub mod exec;
pub mod init;
pub mod join;
pub mod rlimits;
pub mod sched;
pub mod setup;
pub mod trampoline;
pub mod user;
