//! How Berth's binaries find each other (berthd → berth-core → berth-shim):
//! next to the running executable first, so that a build directory or an
//! install prefix is self-contained, then on PATH.

use std::path::PathBuf;

pub fn sibling_or_path(name: &str) -> Option<PathBuf> {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
