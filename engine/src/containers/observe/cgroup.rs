//! Reading a running container's cgroup (v1 or v2) for `docker stats` and
//! `docker top`. The container's cgroups are found from its init process
//! (`/proc/<pid>/cgroup`), so this works whichever cgroup layout and
//! runtime the host has. Read-only: limits are set by the runtime.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Where a container's cgroup directories are.
#[derive(Debug, Default)]
pub struct Cgroup {
    /// Per v1 controller (`memory`, `cpuacct`, `pids`, `blkio`, ...).
    v1: HashMap<String, PathBuf>,
    /// The unified hierarchy's directory on a pure v2 host.
    v2: Option<PathBuf>,
}

impl Cgroup {
    /// The cgroups of process `pid`; `None` if it is gone.
    pub fn of_pid(pid: u32) -> Option<Cgroup> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let pure_v2 = Path::new(ROOT).join("cgroup.controllers").exists();
        let mut cg = Cgroup::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                if pure_v2 {
                    cg.v2 = Some(Path::new(ROOT).join(rel));
                }
                continue;
            }
            for c in controllers.split(',').filter(|c| !c.starts_with("name=")) {
                let own = Path::new(ROOT).join(c).join(rel);
                let joint = Path::new(ROOT).join(controllers).join(rel);
                cg.v1
                    .insert(c.to_string(), if own.exists() { own } else { joint });
            }
        }
        Some(cg)
    }

    /// Whether the container's cgroups are v1 ones (a hybrid host's
    /// controllers included).
    pub fn is_v1(&self) -> bool {
        self.v2.is_none()
    }

    fn v1_file(&self, controller: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.v1.get(controller)?.join(file)).ok()
    }

    fn v2_file(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.v2.as_ref()?.join(file)).ok()
    }

    /// Every process in the container (host pids), its execs included.
    pub fn pids(&self) -> Vec<u32> {
        let text = self
            .v2_file("cgroup.procs")
            .or_else(|| self.v1_file("pids", "cgroup.procs"))
            .or_else(|| self.v1_file("memory", "cgroup.procs"));
        text.unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    pub fn cpu(&self) -> Cpu {
        if let Some(stat) = self.v2_file("cpu.stat") {
            let kv = key_values(&stat);
            let us = |k: &str| kv.get(k).copied().unwrap_or(0) * 1000;
            return Cpu {
                total: us("usage_usec"),
                user: us("user_usec"),
                system: us("system_usec"),
                per_cpu: None,
                periods: kv.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: kv.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: us("throttled_usec"),
            };
        }
        // cpuacct.stat counts USER_HZ ticks (100 a second on Linux).
        let acct = key_values(&self.v1_file("cpuacct", "cpuacct.stat").unwrap_or_default());
        let throttle = key_values(&self.v1_file("cpu", "cpu.stat").unwrap_or_default());
        Cpu {
            total: number(self.v1_file("cpuacct", "cpuacct.usage")),
            user: acct.get("user").copied().unwrap_or(0) * 10_000_000,
            system: acct.get("system").copied().unwrap_or(0) * 10_000_000,
            per_cpu: self.v1_file("cpuacct", "cpuacct.usage_percpu").map(|s| {
                s.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            }),
            periods: throttle.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: throttle.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: throttle.get("throttled_time").copied().unwrap_or(0),
        }
    }

    pub fn memory(&self) -> Memory {
        if let Some(current) = self.v2_file("memory.current") {
            let limit = self
                .v2_file("memory.max")
                .and_then(|s| s.trim().parse().ok());
            return Memory {
                usage: number(Some(current)),
                max_usage: None,
                limit: limit.unwrap_or_else(host_memory),
                stats: key_values(&self.v2_file("memory.stat").unwrap_or_default()),
            };
        }
        let limit = number(self.v1_file("memory", "memory.limit_in_bytes"));
        let host = host_memory();
        Memory {
            usage: number(self.v1_file("memory", "memory.usage_in_bytes")),
            max_usage: Some(number(self.v1_file("memory", "memory.max_usage_in_bytes"))),
            // v1 shows "no limit" as a page-rounded i64::MAX.
            limit: if limit == 0 || limit > host {
                host
            } else {
                limit
            },
            stats: key_values(&self.v1_file("memory", "memory.stat").unwrap_or_default()),
        }
    }

    /// (current, limit); limit 0 when there is none.
    pub fn pids_count(&self) -> (u64, u64) {
        let (cur, max) = match self.v2_file("pids.current") {
            Some(c) => (Some(c), self.v2_file("pids.max")),
            None => (
                self.v1_file("pids", "pids.current"),
                self.v1_file("pids", "pids.max"),
            ),
        };
        (
            number(cur),
            max.and_then(|m| m.trim().parse().ok()).unwrap_or(0),
        )
    }

    /// Bytes read and written per device: (major, minor, op, value).
    pub fn io_bytes(&self) -> Vec<(u64, u64, &'static str, u64)> {
        let mut out = Vec::new();
        if let Some(stat) = self.v2_file("io.stat") {
            for line in stat.lines() {
                let mut words = line.split_whitespace();
                let Some((major, minor)) = words.next().and_then(device) else {
                    continue;
                };
                for w in words {
                    match w.split_once('=') {
                        Some(("rbytes", v)) => {
                            out.push((major, minor, "read", v.parse().unwrap_or(0)))
                        }
                        Some(("wbytes", v)) => {
                            out.push((major, minor, "write", v.parse().unwrap_or(0)))
                        }
                        _ => {}
                    }
                }
            }
            return out;
        }
        for line in self
            .v1_file("blkio", "blkio.throttle.io_service_bytes")
            .unwrap_or_default()
            .lines()
        {
            let w: Vec<&str> = line.split_whitespace().collect();
            if let [dev, op, value] = w[..] {
                let Some((major, minor)) = device(dev) else {
                    continue;
                };
                let op = match op {
                    "Read" => "Read",
                    "Write" => "Write",
                    _ => continue,
                };
                out.push((major, minor, op, value.parse().unwrap_or(0)));
            }
        }
        out
    }
}

pub struct Cpu {
    /// Nanoseconds.
    pub total: u64,
    pub user: u64,
    pub system: u64,
    pub per_cpu: Option<Vec<u64>>,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

pub struct Memory {
    pub usage: u64,
    pub max_usage: Option<u64>,
    pub limit: u64,
    pub stats: BTreeMap<String, u64>,
}

fn number(s: Option<String>) -> u64 {
    s.and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

fn device(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// MemTotal in bytes: Docker's "limit" of a container without one.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The host's CPU time in nanoseconds (all CPUs, from /proc/stat, USER_HZ
/// 100): the denominator of `docker stats`' CPU percentage.
pub fn system_cpu_usage() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal (guest time is in user).
    line.split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|n| n.parse::<u64>().ok())
        .sum::<u64>()
        * 10_000_000
}

/// Per-interface counters inside the network namespace of `pid`, without
/// loopback: (name, rx bytes, rx packets, rx errors, rx dropped, tx ...).
pub fn network(pid: u32) -> Vec<(String, [u64; 8])> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if n.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                [n[0], n[1], n[2], n[3], n[8], n[9], n[10], n[11]],
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_is_readable() {
        let cg = Cgroup::of_pid(std::process::id()).expect("own cgroup");
        assert!(cg.pids().contains(&std::process::id()) || cg.pids().is_empty());
        assert!(host_memory() > 0);
        assert!(system_cpu_usage() > 0);
    }
}
