//! Resolving `Config.User` ("1000", "1000:1000", "app", "app:staff") against
//! the container's own /etc/passwd and /etc/group, read through
//! [`Confined`] so that a symlinked /etc/passwd cannot make us read the host's.

use std::io::Read;
use std::path::Path;

use crate::confined::Confined;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

fn read(root: &Confined, path: &str) -> String {
    let mut s = String::new();
    if let Ok(mut f) = root.open_file(Path::new(path)) {
        let _ = f.by_ref().take(4 << 20).read_to_string(&mut s);
    }
    s
}

pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser> {
    let root = Confined::open(rootfs)?;
    let passwd = read(&root, "etc/passwd");
    let group = read(&root, "etc/group");
    resolve_with(spec, &passwd, &group)
}

/// `--group-add`: numbers as they are, names looked up in the container's
/// /etc/group.
pub fn resolve_groups(rootfs: &Path, names: Option<&[String]>) -> Result<Vec<u32>> {
    let names = names.unwrap_or_default();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let root = Confined::open(rootfs)?;
    groups_with(names, &read(&root, "etc/group"))
}

fn groups_with(names: &[String], group: &str) -> Result<Vec<u32>> {
    names
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "Unable to find group {g}: no matching entries in group file"
                    ))
                }),
        })
        .collect()
}

pub fn resolve_with(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let (uid, mut gid, name, home) = if user.is_empty() {
        (0, 0, "root".to_string(), "/root".to_string())
    } else if let Ok(uid) = user.parse::<u32>() {
        match entries.iter().find(|f| f[2].parse() == Ok(uid)) {
            Some(f) => (
                uid,
                f[3].parse().unwrap_or(0),
                f[0].to_string(),
                f[5].to_string(),
            ),
            None => (uid, 0, String::new(), "/".to_string()),
        }
    } else {
        let f = entries.iter().find(|f| f[0] == user).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unable to find user {user}: no matching entries in passwd file"
            ))
        })?;
        (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[0].to_string(),
            f[5].to_string(),
        )
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // The primary group is a supplementary group too, as Docker (since
    // the fix for CVE-2023-25173) sets it: otherwise a process could keep
    // access that a group's negative permissions were meant to deny.
    let mut additional_gids = vec![gid];
    if !name.is_empty() && grp.is_none() {
        additional_gids.extend(
            groups
                .iter()
                .filter(|f| f[3].split(',').any(|m| m == name))
                .filter_map(|f| f[2].parse::<u32>().ok())
                .filter(|g| *g != gid),
        );
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1000:\n";

    #[test]
    fn names_and_numbers() {
        assert_eq!(resolve_with("", PASSWD, GROUP).unwrap().uid, 0);
        let app = resolve_with("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.additional_gids.clone()),
            (1000, 1000, vec![1000, 50])
        );
        assert_eq!(resolve_with("1000:staff", PASSWD, GROUP).unwrap().gid, 50);
        assert_eq!(
            resolve_with("4242", PASSWD, GROUP).unwrap(),
            ResolvedUser {
                uid: 4242,
                gid: 0,
                additional_gids: vec![0],
                home: "/".into()
            }
        );
        assert!(resolve_with("nosuch", PASSWD, GROUP)
            .unwrap_err()
            .to_string()
            .contains("no matching entries in passwd file"));
    }
}
