//! A container's streams: attach, logs and their drivers, exec.

pub mod attach;
pub mod exec;
pub mod fluentd;
pub mod gelf;
pub mod journald;
pub mod log_opts;
pub mod log_tag;
pub mod logs;
pub mod syslog;
