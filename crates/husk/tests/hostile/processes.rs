//! Hostile processes inside the container: the runtime binary through /proc/PID/exe (CAP_SYS_PTRACE), /proc races.
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;
