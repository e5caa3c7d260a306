//! husk's runtime library: everything between an OCI bundle and a running container.
//!
//! One module per kernel concern; the CLI crate only parses arguments and calls `container`.

pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod console;
pub mod container;
pub mod crashpoint;
pub mod criu;
pub mod error;
pub mod fdpass;
pub mod features;
#[doc(hidden)]
pub mod fuzz;
pub mod hooks;
pub mod intel_rdt;
pub mod lsm;
pub mod namespaces;
pub mod netdevices;
pub mod notify;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod smallfile;
pub mod spec_template;
pub mod state;
pub mod sync;
pub mod syscalls;
pub mod userns;

pub use error::{Error, Result};
