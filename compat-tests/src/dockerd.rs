//! Debian's dockerd (docker.io 20.10) as the oracle of the differential
//! tests: started on its own data-root, exec-root, socket and bridge, with
//! `--iptables=false` and `--ip-masq=false` so that it leaves the host's
//! firewall alone, and its own containerd namespace. [`Dockerd::finish`]
//! removes its containers, stops it and its containerd, and fails if any
//! process or mount of it is left behind.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{
    docker_on, http, keep_log, mounts_below, processes_mentioning, remove_all_containers,
    unmount_below, unsafe_kill, wait_exit,
};

pub struct Dockerd {
    pub root: PathBuf,
    pub socket: PathBuf,
    bridge: String,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd, or returns why it cannot run here (not installed:
    /// `contrib/setup.sh --deps` installs docker.io).
    pub fn start() -> Result<Dockerd, String> {
        Dockerd::start_with(&[])
    }

    /// [`Dockerd::start`] with more flags (`--config-file …`).
    pub fn start_with(extra: &[&str]) -> Result<Dockerd, String> {
        let bin = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or("dockerd is not installed (bash contrib/setup.sh --deps installs docker.io)")?;
        // One oracle per host slot: the bridge and its subnet are named
        // after our pid and how many oracles this process started, so that
        // neither parallel test binaries nor parallel tests meet.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = (std::process::id() * 7 + k) % 200;
        let name = format!("berth-oracle-{}-{k}", std::process::id());
        let root = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let bridge = format!("dkoracle{n}");
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("10.249.{n}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        let log = std::fs::File::create(root.join("dockerd.log")).map_err(|e| e.to_string())?;
        let socket = root.join("docker.sock");
        let ns = name.clone();
        let child = Command::new(bin)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["-b", &bridge, "--iptables=false", "--ip-masq=false"])
            .args(["--containerd-namespace", &ns])
            .args(["--containerd-plugins-namespace", &format!("{ns}-plugins")])
            // Its default address pools would be taken from the host's
            // unused private ranges; keep user networks beside its bridge.
            .args([
                "--default-address-pool",
                &format!("base=10.248.{n}.0/24,size=28"),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start dockerd: {e}"))?;
        let mut d = Dockerd {
            root,
            socket,
            bridge,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http::request(&d.socket, "GET", "/_ping", None).is_ok_and(|r| r.status == 200) {
                return Ok(d);
            }
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                let log = d.log();
                d.child = None;
                return Err(format!("dockerd exited with {status}:\n{log}"));
            }
            if Instant::now() > deadline {
                return Err(format!("dockerd did not answer within 60 s:\n{}", d.log()));
            }
            // Polling the socket: nothing else says when dockerd listens.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// dockerd's pid (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("dockerd runs").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    /// The docker CLI against this dockerd.
    pub fn docker(&self, args: &[&str]) -> crate::Run {
        crate::Run::from(
            docker_on(&self.socket, &self.root, args)
                .stdin(Stdio::null())
                .output()
                .expect("run docker"),
        )
    }

    pub fn load_busybox(&self) {
        let tar = crate::images::busybox_tar();
        self.docker(&["load", "-i", tar.to_str().unwrap()]).ok();
    }

    fn shutdown(&mut self) -> Option<String> {
        let mut complaint = None;
        if self.child.is_some() {
            complaint = remove_all_containers(|args| self.docker(args));
            for net in self
                .docker(&["network", "ls", "-q", "--filter", "type=custom"])
                .stdout
                .split_whitespace()
            {
                self.docker(&["network", "rm", net]);
            }
        }
        if let Some(mut c) = self.child.take() {
            // dockerd stops its own containerd on SIGTERM.
            unsafe_kill(c.id() as i32, libc::SIGTERM);
            let _ = c.wait();
        }
        for (pid, _) in processes_mentioning(&self.root) {
            unsafe_kill(pid as i32, libc::SIGKILL);
            wait_exit(pid as i32);
        }
        unmount_below(&self.root);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        complaint
    }

    /// Stops everything, then fails if a process or mount was left behind.
    pub fn finish(mut self) {
        let rm = self.shutdown();
        let procs = processes_mentioning(&self.root);
        let mounts = mounts_below(&self.root);
        let log = self.log();
        let _ = std::fs::remove_dir_all(&self.root);
        assert!(
            rm.is_none(),
            "docker rm -f on dockerd failed: {rm:?}\n{log}"
        );
        assert!(procs.is_empty(), "dockerd processes left behind: {procs:?}");
        assert!(mounts.is_empty(), "dockerd mounts left behind: {mounts:?}");
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            keep_log(&self.root, &self.log(), "dockerd's log");
        }
        let _ = self.shutdown();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
