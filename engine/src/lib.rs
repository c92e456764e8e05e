//! berthd: the Docker Engine API.
//!
//! Layers, top to bottom: `api` (HTTP, the only module that knows axum and
//! Docker's wire details), the services `containers` and `images` (what the
//! API asks for, knowing nothing of HTTP), `store` (the only module that
//! knows SQL), and `core_client` (the only way to reach berth-core).

#![deny(unsafe_code)]

pub mod api;
pub mod build;
pub mod buildkit;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod confined;
pub mod containers;
pub mod core_client;
pub mod cri;
pub mod engine;
pub mod error;
pub mod events;
pub mod filters;
pub mod go_json;
pub mod host_info;
pub mod images;
pub mod listener;
pub mod metrics;
pub mod networks;
pub mod reload;
pub mod store;
pub mod tarball;
pub mod tcp;
pub mod upgrade;
pub mod util;
pub mod volumes;

pub use engine::Engine;
pub use error::Error;
