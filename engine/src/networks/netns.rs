//! Network namespaces that outlive every process: a namespace is kept by
//! bind-mounting it onto a file under `<exec-root>/netns/`, as `ip netns
//! add` does under /run/netns. The container joins it by path, so its
//! network (and what netavark set up in it) belongs to the container, not
//! to the berthd that made it. A pod's IPC and UTS namespaces are kept the
//! same way (`keep`).

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{Error, Result};

/// Creates a new network namespace kept at `path` (which must not exist).
pub fn create(path: &Path) -> Result<()> {
    keep(path, Kind::Net, None)
}

/// The namespaces a file can keep for processes that join later (a
/// pod's, which no process holds: see `cri::pods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Net,
    Ipc,
    Uts,
}

impl Kind {
    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }

    /// Its name under /proc/<pid>/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
        }
    }
}

/// Creates a new namespace of `kind` kept at `path` (which must not
/// exist); a UTS namespace gets `hostname` before anyone can join it.
pub fn keep(path: &Path, kind: Kind, hostname: Option<&str>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)?;
    let target = path.to_path_buf();
    let hostname = hostname.map(str::to_string);
    // unshare() of these kinds moves only the calling thread, so a
    // throwaway thread does it: the engine's own threads stay in the
    // host's namespaces.
    let made = std::thread::spawn(move || -> std::result::Result<(), String> {
        unshare(kind.flag()).map_err(|e| format!("unshare: {e}"))?;
        if let Some(name) = hostname {
            nix::unistd::sethostname(&name).map_err(|e| format!("sethostname: {e}"))?;
        }
        mount(
            Some(format!("/proc/thread-self/ns/{}", kind.proc_name()).as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind mount: {e}"))
    })
    .join()
    .map_err(|_| Error::Internal("namespace thread panicked".into()))?;
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(Error::Internal(format!(
            "creating {} namespace {}: {e}",
            kind.proc_name(),
            path.display()
        )));
    }
    Ok(())
}

/// Sets the sysctl `key` (dotted, as `net.ipv4.ip_forward`) to `value`
/// in the namespace of `kind` kept at `path`: /proc/sys answers for the
/// namespaces of the thread that opens it, so a throw-away thread joins
/// the namespace and writes there.
pub fn set_sysctl(path: &Path, kind: Kind, key: &str, value: &str) -> Result<()> {
    // The key names a file below /proc/sys, and nothing else.
    if key
        .split('.')
        .any(|part| part.is_empty() || part.contains('/'))
    {
        return Err(Error::InvalidArgument(format!("invalid sysctl {key:?}")));
    }
    let file = std::path::PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    let ns = std::fs::File::open(path)?;
    let written = value.to_string();
    let done = std::thread::spawn(move || -> std::io::Result<()> {
        nix::sched::setns(&ns, kind.flag())?;
        std::fs::write(&file, written)
    })
    .join()
    .map_err(|_| Error::Internal("sysctl thread panicked".into()))?;
    done.map_err(|e| Error::InvalidArgument(format!("setting sysctl {key:?} to {value:?}: {e}")))
}

/// Releases the namespace kept at `path` (it goes once no process is in
/// it) and removes the file. Missing is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Internal(format!(
                "unmounting network namespace {}: {e}",
                path.display()
            )))
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` holds a namespace (a file of the nsfs filesystem).
pub fn is_kept(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == NSFS_MAGIC)
        .unwrap_or(false)
}

/// Makes an (empty) bridge of that name unless one exists: netavark's
/// teardown looks the network's bridge up before anything else and gives
/// up without it, leaving the network's firewall rules behind. With an
/// empty bridge it sees the last interface go and removes rules and bridge.
pub fn ensure_bridge(name: &str) {
    if name.is_empty() || Path::new("/sys/class/net").join(name).exists() {
        return;
    }
    let done = std::process::Command::new("ip")
        .args(["link", "add", "name", name, "type", "bridge"])
        .stderr(std::process::Stdio::null())
        .status();
    if !done.is_ok_and(|s| s.success()) {
        tracing::warn!(
            bridge = name,
            "could not add a stand-in bridge for teardown"
        );
    }
}

/// Adds a veth pair whose first end is named `iface` inside the namespace
/// at `path` (through nsenter and ip, a rarely taken path: see
/// `sandbox::leave`). Failure only means netavark's teardown stops early.
pub fn add_stand_in(path: &Path, iface: &str) {
    let done = std::process::Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(["ip", "link", "add", iface, "type", "veth", "peer", "name"])
        .arg(format!("{iface}-peer"))
        .stderr(std::process::Stdio::null())
        .status();
    if !done.is_ok_and(|s| s.success()) {
        tracing::warn!(iface, "could not add a stand-in interface for teardown");
    }
}
