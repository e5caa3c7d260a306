//! seccomp profiles that cost too much: programs larger than a pipe buffer, very many rules.
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;
