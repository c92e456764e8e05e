//! `docker top`: the host's `ps` with the user's arguments, keeping the
//! rows of the container's processes (found through its cgroup), as Docker
//! does.

use std::collections::HashSet;

use tokio::process::Command;

use crate::containers::observe::cgroup::Cgroup;
use crate::containers::Containers;
use crate::error::{Error, Result};

pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

impl Containers {
    /// `GET /containers/{id}/top?ps_args=...` (default `-ef`).
    pub async fn top(&self, name: &str, ps_args: &str) -> Result<Top> {
        let c = self.lookup(name).await?;
        if !c.is_running() || c.state.restarting {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let pids: Vec<u32> = Cgroup::of_pid(c.state.pid)
            .map(|cg| cg.pids())
            .unwrap_or_default();
        let pids = if pids.is_empty() {
            vec![c.state.pid]
        } else {
            pids
        };
        let args: Vec<&str> = ps_args.split_whitespace().collect();
        let args = if args.is_empty() { vec!["-ef"] } else { args };
        // `-q` narrows ps to the container's pids; some options refuse it,
        // then all processes are listed and filtered below.
        let only = format!(
            "-q{}",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut out = Command::new("ps").args(&args).arg(&only).output().await?;
        if !out.status.success() {
            out = Command::new("ps").args(&args).output().await?;
        }
        if !out.status.success() {
            return Err(Error::Internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse(
            &String::from_utf8_lossy(&out.stdout),
            &pids.into_iter().collect(),
        )
    }
}

/// Splits ps output into titles and rows (the last column, the command,
/// keeps its spaces) and keeps the rows whose PID is in `pids`.
fn parse(output: &str, pids: &HashSet<u32>) -> Result<Top> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::InvalidArgument("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields
            .iter()
            .take(titles.len().saturating_sub(1))
            .map(|s| s.to_string())
            .collect();
        row.push(
            fields
                .get(titles.len().saturating_sub(1)..)
                .map(|rest| rest.join(" "))
                .unwrap_or_default(),
        );
        processes.push(row);
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_container_rows_and_whole_commands() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 10:00 ? 00:00:00 sleep 100\nroot 11 1 0 10:00 ? 00:00:00 other thing\n";
        let top = parse(out, &[10].into_iter().collect()).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(
            top.processes,
            vec![vec![
                "root",
                "10",
                "1",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "sleep 100"
            ]]
        );
        assert!(parse("USER COMMAND\nroot x\n", &HashSet::new()).is_err());
    }
}
