//! Hostile rootfs layouts: symlinked /proc, /dev, /dev/console, mount destinations through symlinks, a swapped rootfs.
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;
