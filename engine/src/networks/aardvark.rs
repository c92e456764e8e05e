//! aardvark-dns's records, written by Berth itself for the interfaces it
//! makes without netavark (`direct`). aardvark-dns reads one file per
//! network in netavark's `<config>/aardvark-dns/` (named after the
//! network's id, as netavark names it): a first line with the network's
//! gateways, then one line per container,
//! `<container id> <IPv4s> <IPv6s> <name>,<alias>,…[ <upstream servers>]`
//! (lists comma-separated), and re-reads them on SIGHUP (its pid is in
//! `aardvark.pid`). netavark's teardown removes such a line like its own,
//! so either side can undo what the other did.
//!
//! Callers hold netavark's host-wide lock (`Netavark::with_host_lock`):
//! netavark rewrites these files during its runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// One container's line in a network's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub container_id: String,
    pub ipv4: String,
    /// The container's name first, then its aliases on the network.
    pub names: Vec<String>,
    /// Servers aardvark-dns asks for other names on this container's
    /// behalf (`--dns`); empty for the host's.
    pub upstream: Vec<String>,
}

impl Record {
    fn line(&self) -> String {
        let mut line = format!(
            "{} {}  {}",
            self.container_id,
            self.ipv4,
            self.names.join(",")
        );
        if !self.upstream.is_empty() {
            line.push(' ');
            line.push_str(&self.upstream.join(","));
        }
        line.push('\n');
        line
    }
}

fn file_of(dir: &Path, network_id: &str) -> PathBuf {
    dir.join(network_id)
}

/// The pid of the aardvark-dns serving `dir`, if it is running.
pub fn running(dir: &Path) -> Option<Pid> {
    let pid: i32 = std::fs::read_to_string(dir.join("aardvark.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let pid = Pid::from_raw(pid);
    kill(pid, None).ok().map(|_| pid)
}

/// Whether aardvark-dns serves the network: its file exists and the
/// server runs.
pub fn serves(dir: &Path, network_id: &str) -> bool {
    file_of(dir, network_id).is_file() && running(dir).is_some()
}

/// Appends a container's record and has aardvark-dns re-read its files.
pub fn add(dir: &Path, network_id: &str, record: &Record) -> Result<()> {
    let path = file_of(dir, network_id);
    // Only to an existing file: its first line (the gateways) is
    // netavark's, written when it set the network up.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| Error::Internal(format!("opening {}: {e}", path.display())))?;
    f.write_all(record.line().as_bytes())?;
    reload(dir)
}

/// Removes a container's record. Returns false (and changes nothing) when
/// it is the network's last one: netavark's teardown then stops the
/// network's DNS as it does for its own last container.
pub fn remove(dir: &Path, network_id: &str, container_id: &str) -> Result<bool> {
    let path = file_of(dir, network_id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    let (kept, removed, others) = without(&text, container_id);
    if !removed {
        return Ok(true);
    }
    if others == 0 {
        return Ok(false);
    }
    // Written aside and renamed: aardvark-dns may read at any moment.
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, kept)?;
    std::fs::rename(&tmp, &path)?;
    reload(dir)?;
    Ok(true)
}

/// The file without the container's lines, whether it had any, and how
/// many container lines remain (the first line is the network's).
fn without(text: &str, container_id: &str) -> (String, bool, usize) {
    let prefix = format!("{container_id} ");
    let mut kept = String::with_capacity(text.len());
    let mut removed = false;
    let mut others = 0;
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            if line.starts_with(&prefix) {
                removed = true;
                continue;
            }
            others += 1;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    (kept, removed, others)
}

fn reload(dir: &Path) -> Result<()> {
    let pid = running(dir).ok_or_else(|| Error::Internal("aardvark-dns is not running".into()))?;
    kill(pid, Signal::SIGHUP).map_err(|e| Error::Internal(format!("signalling aardvark-dns: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(upstream: &[&str]) -> Record {
        Record {
            container_id: "abc".into(),
            ipv4: "10.0.0.5".into(),
            names: vec!["web-1".into(), "abc".into(), "web".into()],
            upstream: upstream.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn lines_are_netavarks() {
        // netavark 1.4 writes "<id> <v4s> <v6s> <names>[ <servers>]"; with
        // no IPv6 address the field is empty between two spaces.
        assert_eq!(record(&[]).line(), "abc 10.0.0.5  web-1,abc,web\n");
        assert_eq!(
            record(&["1.1.1.1", "9.9.9.9"]).line(),
            "abc 10.0.0.5  web-1,abc,web 1.1.1.1,9.9.9.9\n"
        );
    }

    #[test]
    fn removal_keeps_the_gateway_line_and_other_containers() {
        let text = "10.0.0.1\nabc 10.0.0.5  web-1\nabcd 10.0.0.6  db-1\n";
        let (kept, removed, others) = without(text, "abc");
        assert_eq!(kept, "10.0.0.1\nabcd 10.0.0.6  db-1\n");
        assert!(removed);
        assert_eq!(others, 1);
        let (_, removed, others) = without("10.0.0.1\nabc 10.0.0.5  web-1\n", "abc");
        assert!(removed);
        assert_eq!(others, 0);
        let (_, removed, _) = without(text, "ab");
        assert!(!removed);
    }
}
