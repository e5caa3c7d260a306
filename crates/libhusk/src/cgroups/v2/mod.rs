//! cgroup v2: `linux.resources` translated as runc translates it, one file per controller, plus
//! the `unified` map written as is.

pub mod cpu;
pub mod io;
pub mod memory;
pub mod unified;
