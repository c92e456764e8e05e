//! A container's filesystem: the overlay root, its mounts and volumes,
//! and what clients do with it (copy in and out, diff, export, commit).

pub mod copy;
pub mod diff;
pub mod mounts;
pub mod rootfs;
pub mod snapshot;
