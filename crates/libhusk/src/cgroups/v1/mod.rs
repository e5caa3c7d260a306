//! cgroup v1: one file per controller, each writing its part of `linux.resources` to the
//! container's directory in that controller's hierarchy.

pub mod blkio;
pub mod cpu;
pub mod memory;
pub mod net;
