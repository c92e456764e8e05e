//! Which OCI runtimes this core can use, and which one is the default.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::Error;

#[derive(Clone)]
pub struct Runtimes {
    default: (String, PathBuf),
    /// Runtimes that passed the probe (or were named explicitly).
    working: Vec<(String, PathBuf)>,
    state_dir: PathBuf,
}

impl Runtimes {
    /// Probes the candidates (fastest first) unless `explicit` names one.
    pub fn detect(state_dir: &Path, explicit: Option<&str>) -> anyhow::Result<Runtimes> {
        let probe_dir = state_dir.join("probe");
        let mut working = Vec::new();
        for name in berth_runtime::probe::CANDIDATES {
            if let Some(path) = berth_runtime::resolve(name) {
                match berth_runtime::probe::runtime_works(&path, &probe_dir) {
                    Ok(()) => working.push((name.to_string(), path)),
                    Err(e) => {
                        info!(runtime = name, error = %e, "runtime does not work on this host")
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&probe_dir);
        let default = match explicit.filter(|s| !s.is_empty()) {
            Some(name) => {
                let path = berth_runtime::resolve(name)
                    .ok_or_else(|| anyhow::anyhow!("runtime {name} not found"))?;
                if !working.iter().any(|(_, p)| p == &path) {
                    warn!(
                        runtime = name,
                        "the chosen runtime did not pass the probe on this host"
                    );
                }
                (display_name(name), path)
            }
            None => working.first().cloned().ok_or_else(|| {
                anyhow::anyhow!("no working OCI runtime found (tried crun, runc)")
            })?,
        };
        Ok(Runtimes {
            default,
            working,
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// One runtime taken as it is, without a probe (tests over a fake runtime).
    pub fn only(state_dir: &Path, name: &str, path: &Path) -> Runtimes {
        let runtime = (name.to_string(), path.to_path_buf());
        Runtimes {
            default: runtime.clone(),
            working: vec![runtime],
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn default_name(&self) -> &str {
        &self.default.0
    }

    pub fn list(&self) -> Vec<berth_proto::RuntimeInfo> {
        self.working
            .iter()
            .map(|(n, p)| berth_proto::RuntimeInfo {
                name: n.clone(),
                path: p.display().to_string(),
            })
            .collect()
    }

    /// Resolves a requested runtime to (name, binary, state root).
    pub fn resolve(&self, requested: &str) -> Result<(String, PathBuf, PathBuf), Error> {
        let (name, path) = if requested.is_empty() {
            self.default.clone()
        } else {
            let path = berth_runtime::resolve(requested).ok_or_else(|| {
                Error::InvalidArgument(format!("unknown or invalid runtime name: {requested}"))
            })?;
            (display_name(requested), path)
        };
        let root = self.state_dir.join("runtime").join(&name);
        Ok((name, path, root))
    }
}

fn display_name(requested: &str) -> String {
    Path::new(requested)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| requested.to_string())
}
