//! Whether the kernel's OOM killer struck in the container's memory cgroup.
//! The cgroup is found from init's `/proc/<pid>/cgroup` while it runs and
//! read when it has exited (the runtime deletes it only later, when the
//! core deletes the task): `oom_kill` in `memory.oom_control` (v1) or
//! `memory.events` (v2).

use std::path::PathBuf;

/// The file holding the container's `oom_kill` counter.
pub fn counter_file(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return Some(PathBuf::from(format!(
                "/sys/fs/cgroup/memory{path}/memory.oom_control"
            )));
        }
        if controllers.is_empty() {
            unified = Some(PathBuf::from(format!("/sys/fs/cgroup{path}/memory.events")));
        }
    }
    unified.filter(|p| p.exists())
}

/// The `oom_kill` count in such a file (0 when unreadable).
pub fn kills(file: &std::path::Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counter() {
        let dir = std::env::temp_dir().join(format!("berth-oom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("memory.oom_control");
        std::fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(kills(&f), 2);
        assert_eq!(kills(&dir.join("missing")), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
