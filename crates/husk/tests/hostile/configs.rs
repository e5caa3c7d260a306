//! Malformed, oversized and non-regular config.json and process.json; hostile CLI numbers (`--preserve-fds`).
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;
