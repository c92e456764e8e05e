//! The journald log driver: the fields dockerd gives every entry, worked
//! out when the container starts and handed to the shim, which sends the
//! entries (so they keep flowing while berthd is down). `docker logs`
//! reads the dual-logging cache, as for syslog: berthd does not read the
//! journal.

use std::path::PathBuf;

use berth_proto::shim::{Journald, LOGGING_FAILED};

use crate::containers::record::Container;
use crate::error::{Error, Result};

/// Options dockerd's journald driver takes (besides the buffer mode's).
pub const OPTIONS: &[&str] = &["tag", "labels", "labels-regex", "env", "env-regex"];

/// The journal's native socket. `BERTH_JOURNAL_SOCKET` in berthd's
/// environment names another (the tests' own journald, in a journal
/// namespace, so that they never write to the host's journal).
fn socket() -> PathBuf {
    std::env::var_os("BERTH_JOURNAL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/systemd/journal/socket"))
}

/// What the shim is given at start; `tag` already filled in.
pub fn settings(c: &Container, tag: String, max_buffer: u64) -> Result<Journald> {
    let socket = socket();
    if !socket.exists() {
        return Err(Error::Internal(format!(
            "{LOGGING_FAILED}: journald is not enabled on this host"
        )));
    }
    let mut fields = vec![
        ("CONTAINER_ID".to_string(), c.id.chars().take(12).collect()),
        ("CONTAINER_ID_FULL".to_string(), c.id.clone()),
        (
            "CONTAINER_NAME".to_string(),
            c.name.trim_start_matches('/').to_string(),
        ),
        ("CONTAINER_TAG".to_string(), tag.clone()),
        ("IMAGE_NAME".to_string(), c.image_ref.clone()),
        ("SYSLOG_IDENTIFIER".to_string(), tag),
    ];
    for (key, value) in c.log_attributes() {
        fields.push((field_name(&key), value));
    }
    Ok(Journald {
        socket: socket.display().to_string(),
        fields,
        max_buffer,
    })
}

/// dockerd's journald key for a label or variable: letters in capitals,
/// anything but letters and digits as `_`, leading `_` dropped (journald
/// keeps such fields for itself).
fn field_name(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        };
        if !(out.is_empty() && c == '_') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_keys_become_journal_field_names() {
        assert_eq!(field_name("com.example.tier"), "COM_EXAMPLE_TIER");
        assert_eq!(field_name("_private-key"), "PRIVATE_KEY");
        assert_eq!(field_name("Path"), "PATH");
    }
}
