//! Hostile ids: uids and gids out of range in config.json, process.json and `exec -u`.
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;
