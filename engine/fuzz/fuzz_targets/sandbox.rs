//! A scratch directory per fuzz process: `root` is where an archive may
//! write, and nothing may appear beside it in `dir`. Shared by the
//! unpacking targets (included with `#[path]`).

use std::path::{Path, PathBuf};

pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("berth-fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Panics (a finding) if anything but `allowed` exists in `dir`, then
    /// empties it for the next input.
    pub fn check_and_reset(&self, allowed: &[&str]) {
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let name = entry.unwrap().file_name();
            let name = name.to_string_lossy();
            assert!(
                allowed.contains(&name.as_ref()),
                "an archive wrote {name} outside its root"
            );
        }
        for a in allowed {
            remove(&self.dir.join(a));
        }
    }
}

fn remove(p: &Path) {
    // Entries may be read-only directories: make them writable first.
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::symlink_metadata(p) {
        if md.is_dir() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    remove(&e.path());
                }
            }
            let _ = std::fs::remove_dir(p);
        } else {
            let _ = std::fs::remove_file(p);
        }
    }
}
