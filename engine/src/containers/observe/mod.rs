//! Looking at a running container: stats and top, read from its cgroup.

pub mod cgroup;
pub mod stats;
pub mod top;
