//! Finding the fastest runtime that really works on this host.
//!
//! "Installed" is not enough (a runtime may refuse the host's cgroup layout,
//! see `hybrid.rs` for the one crun refuses here and how Berth runs it
//! anyway). So each candidate runs a throw-away container
//! (`/bin/true` from a read-only bind of the host's /usr, /bin and /lib) and
//! the first that exits 0 wins. Candidates are tried fastest first.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::Error;

/// Runtimes in order of preference: crun starts containers fastest.
pub const CANDIDATES: &[&str] = &["crun", "runc"];

/// Runs a minimal container with `binary` under `work` (created and removed).
pub fn runtime_works(binary: &Path, work: &Path) -> Result<(), Error> {
    let id = format!("berth-probe-{}", std::process::id());
    let bundle = work.join(&id);
    let _ = std::fs::remove_dir_all(&bundle);
    // Mount points the runtime expects (crun will not create /dev).
    for dir in ["dev", "proc"] {
        std::fs::create_dir_all(bundle.join("rootfs").join(dir))?;
    }
    std::fs::write(bundle.join("config.json"), probe_spec(&id).to_string())?;
    let root = work.join("root");
    let log = bundle.join("log.json");
    let out = crate::Cli::new(binary, &root, &log)
        .creating_command()
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Spawn {
            binary: binary.to_path_buf(),
            source: e,
        });
    let result = match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let mut message = crate::last_log_error(&log).unwrap_or_default();
            if message.is_empty() {
                message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            }
            Err(Error::CommandFailed {
                command: "run",
                status: out.status.code().unwrap_or(-1),
                message,
            })
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&bundle);
    result
}

/// The first candidate that is installed and runs a container, with the
/// reasons the others were passed over.
pub fn detect(work: &Path) -> (Option<(String, PathBuf)>, Vec<String>) {
    let mut skipped = Vec::new();
    for name in CANDIDATES {
        let Some(path) = crate::resolve(name) else {
            skipped.push(format!("{name}: not installed"));
            continue;
        };
        match runtime_works(&path, work) {
            Ok(()) => return (Some((name.to_string(), path)), skipped),
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    }
    (None, skipped)
}

fn probe_spec(id: &str) -> serde_json::Value {
    let mut mounts =
        vec![serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"})];
    for dir in ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
        if Path::new(dir).exists() {
            mounts.push(serde_json::json!({
                "destination": dir, "type": "bind", "source": dir, "options": ["rbind", "ro"]
            }));
        }
    }
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "probe",
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/berth-probe/{id}"),
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]
        }
    })
}
