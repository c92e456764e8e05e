//! berth-core: the supervisor.
//!
//! It owns container lifecycle and nothing Docker-specific: it knows tasks
//! (an OCI bundle plus a shim) in namespaces, never images, networks or
//! container names. See ARCHITECTURE.md for where it sits.

#![deny(unsafe_code)]

pub mod api;
pub mod cli;
pub mod error;
pub mod event_log;
pub mod generation;
pub mod handover;
pub mod ids;
pub mod lock;
pub mod pidfd;
pub mod runtimes;
pub mod serving;
pub mod shim;
pub mod tasks;

pub use error::Error;
