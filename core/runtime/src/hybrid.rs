//! Running crun on a hybrid cgroup host.
//!
//! crun 1.8 refuses hosts that mount cgroup v1 controllers under
//! /sys/fs/cgroup with a cgroup2 hierarchy beside it at
//! /sys/fs/cgroup/unified once any controller (here: hugetlb) sits on that
//! cgroup2 ("cgroups in hybrid mode not supported, drop all controllers from
//! cgroupv2"). runc manages such a host as cgroup v1. crun does the same
//! when it cannot see the cgroup2 mount, so on such hosts `crun create`
//! (the one command that checks; exec, kill, pause, update and delete work
//! as they are) runs in a mount namespace of its own in which
//! /sys/fs/cgroup/unified is unmounted. Nothing else about its view
//! changes: the rest of the mount tree keeps its propagation, so bind
//! propagation into containers works as on the host. Worth it: crun starts
//! and execs processes in about a third of runc's time. (Not for exec: a
//! new mount namespace costs an RCU grace period when it goes away.)

#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Whether this host is the hybrid layout crun refuses (checked once).
pub fn host_is_hybrid_with_v2_controllers() -> bool {
    static HYBRID: OnceLock<bool> = OnceLock::new();
    *HYBRID.get_or_init(|| {
        let fs_type = |p: &str| {
            nix::sys::statfs::statfs(p)
                .ok()
                .map(|s| s.filesystem_type())
        };
        fs_type(CGROUP_ROOT) == Some(nix::sys::statfs::TMPFS_MAGIC)
            && fs_type(UNIFIED) == Some(nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            && std::fs::read_to_string(Path::new(UNIFIED).join("cgroup.controllers"))
                .is_ok_and(|c| !c.trim().is_empty())
    })
}

/// Whether `binary` is crun (by its file name).
pub fn is_crun(binary: &Path) -> bool {
    binary
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("crun"))
}

/// Makes `cmd` run with the cgroup2 mount hidden from it (see the module
/// comment).
pub fn hide_unified_cgroup(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and makes
    // only system calls (unshare, mount, umount2); nix passes the short,
    // constant paths through stack buffers, so nothing allocates or takes a
    // lock that another thread of the parent could have held.
    unsafe {
        cmd.pre_exec(|| {
            unshare(CloneFlags::CLONE_NEWNS)?;
            // Private first, so that the umount below stays in this
            // namespace instead of reaching the host's peers.
            mount(
                None::<&str>,
                CGROUP_ROOT,
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )?;
            umount2(UNIFIED, MntFlags::MNT_DETACH)?;
            Ok(())
        });
    }
}
