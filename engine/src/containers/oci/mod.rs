//! What the OCI runtime is given for a container: its spec (namespaces,
//! mounts, devices), what it may do (security), its limits and its user.

pub mod resources;
pub mod security;
pub mod spec;
pub mod user;
