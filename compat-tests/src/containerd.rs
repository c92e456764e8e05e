//! The CRI's oracle: Debian's containerd (installed with docker.io) with
//! its CRI plugin on a socket, root and state of its own, next to which a
//! test asks berthd's CRI socket the same things through crictl. Dropping
//! it stops the process and deletes its directories.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Run;

pub struct Containerd {
    pub socket: PathBuf,
    dir: PathBuf,
    child: Child,
}

/// How a test's containerd runs pods: the image of its pause containers
/// (a registry's, since public ones cannot be reached here) and the CNI
/// configuration directory.
pub struct PodSetup<'a> {
    pub sandbox_image: &'a str,
    pub cni_conf_dir: &'a Path,
}

impl Containerd {
    /// `insecure`: registries (host:port) it may reach over plain HTTP.
    pub fn start(insecure: &[&str]) -> Containerd {
        Containerd::start_with(insecure, None)
    }

    /// Runs pods as `pods` says (none without: its CNI directory is empty).
    pub fn start_with(insecure: &[&str], pods: Option<PodSetup>) -> Containerd {
        let dir = std::env::temp_dir().join(format!(
            "berth-containerd-{}-{}",
            std::process::id(),
            crate::unique()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        let socket = dir.join("containerd.sock");
        let cni = pods
            .as_ref()
            .map_or(dir.join("cni"), |p| p.cni_conf_dir.to_path_buf());
        let mut config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n[grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  conf_dir = \"{cni}\"\n  bin_dir = \"{bin}\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
            cni = cni.display(),
            bin = crate::cni::PLUGINS,
        );
        if let Some(p) = &pods {
            // Plugin settings belong before the mirror tables below. This
            // machine may not lower oom_score_adj (the pause container's
            // -998): containerd's own option keeps it at its own value.
            config.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{}\"\n  restrict_oom_score_adj = true\n",
                p.sandbox_image
            ));
        }
        for host in insecure {
            config.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{host}\"]\n  endpoint = [\"http://{host}\"]\n"
            ));
        }
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start containerd (installed with docker.io by contrib/setup.sh)");
        let c = Containerd { socket, dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !crictl(&c.socket, &["version"])
            .stdout
            .contains("RuntimeName")
        {
            assert!(
                Instant::now() < deadline,
                "containerd's CRI did not answer:\n{}",
                std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    pub fn crictl(&self, args: &[&str]) -> Run {
        crictl(&self.socket, args)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
            crate::keep_log(&self.dir, &log, "containerd's log");
        }
        // Its pods' pause containers would outlive it (in their shims).
        let _ = crictl(&self.socket, &["rmp", "--all", "--force"]);
        // SIGTERM: containerd stops its plugins and removes its sockets.
        // SAFETY: a plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// crictl (built by contrib/setup.sh into target/tools) against the CRI on
/// `socket`, as runtime and image endpoint.
pub fn crictl(socket: &Path, args: &[&str]) -> Run {
    let endpoint = format!("unix://{}", socket.display());
    let out = Command::new(crate::workspace_root().join("target/tools/crictl"))
        .args(["--config", "/dev/null", "--timeout", "60s"])
        .args([
            "--runtime-endpoint",
            &endpoint,
            "--image-endpoint",
            &endpoint,
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run crictl (built by contrib/setup.sh --deps into target/tools)");
    Run::from(out)
}
