//! Facts about the host that `docker info` (and the metrics' engine info)
//! report: kernel, distribution and memory, the filesystem under the data
//! root, and the versions of the default runtime and of the init `--init`
//! uses. Versions cost a process each, so each binary is asked
//! once and the answer kept (a binary replaced on disk is a new path only
//! after a restart; dockerd asks once too).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The data root's filesystem, named as dockerd's storage drivers name
/// it ("extfs", "xfs", "btrfs", …).
pub fn backing_filesystem(path: &Path) -> String {
    let Ok(fs) = nix::sys::statfs::statfs(path) else {
        return "<unknown>".into();
    };
    // Magic numbers of statfs(2)'s f_type.
    match fs.filesystem_type().0 as u64 {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        0xF2F5_2010 => "f2fs",
        0x5346_4846 => "wslfs",
        _ => "<unknown>",
    }
    .to_string()
}

/// The kernel's release (`uname -r`).
pub fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A field of /etc/os-release (`VERSION_ID`), unquoted.
pub fn os_release(field: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix('=')
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// The distribution's name (`PRETTY_NAME` of /etc/os-release).
pub fn os_name() -> String {
    os_release("PRETTY_NAME").unwrap_or_else(|| "Linux".into())
}

/// The host's memory in bytes (`MemTotal` of /proc/meminfo).
pub fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// What `--version` says a runtime or init is, as `docker info` shows it:
/// the `commit:` line's value when there is one (runc, crun), else the
/// git id after ` - git.` (tini), else the version word. `None` when the
/// binary does not answer.
pub fn version_of(binary: &Path) -> Option<String> {
    static KNOWN: Mutex<Option<HashMap<PathBuf, Option<String>>>> = Mutex::new(None);
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    let map = known.get_or_insert_with(HashMap::new);
    if let Some(v) = map.get(binary) {
        return v.clone();
    }
    let answer = std::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)));
    map.insert(binary.to_path_buf(), answer.clone());
    answer
}

fn parse_version(text: &str) -> Option<String> {
    if let Some(commit) = text
        .lines()
        .find_map(|l| l.strip_prefix("commit:"))
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        return Some(commit.to_string());
    }
    let first = text.lines().next()?;
    if let Some((_, git)) = first.split_once(" - git.") {
        return Some(git.trim().to_string());
    }
    first.split_whitespace().last().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_docker_info_shows_them() {
        assert_eq!(
            parse_version("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n"),
            Some("1.1.5+ds1-1+deb12u1".into())
        );
        assert_eq!(
            parse_version("tini version 0.19.0 - git.de40ad0\n"),
            Some("de40ad0".into())
        );
        assert_eq!(
            parse_version("tini version 0.19.0\n"),
            Some("0.19.0".into())
        );
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn the_filesystem_under_a_directory_has_a_name() {
        assert_ne!(backing_filesystem(Path::new("/proc")), "");
        assert_eq!(backing_filesystem(Path::new("/nonexistent/x")), "<unknown>");
    }
}
