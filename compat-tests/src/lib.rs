//! Test harness: a private Berth (berthd, which starts berth-core) on its
//! own data-root, exec-root and socket under /tmp, driven by the real docker
//! CLI through DOCKER_HOST. [`Berth::finish`] stops everything and fails the
//! test if any process or mount of this instance is left behind.
//!
//! Binaries come from `BERTH_BIN_DIR`, else target/release, else
//! target/debug (build them first: `cargo build --release`).

pub mod cni;
pub mod containerd;
pub mod dockerd;
pub mod http;
pub mod images;
pub mod oracle;
pub mod registry;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a script of compat-tests/python with `args` and asserts that it
/// succeeded and printed `done`; returns what it printed.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr], done: &str) -> String {
    let out = Command::new("python3")
        .arg(workspace_root().join("compat-tests/python").join(script))
        .args(args)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(done), "{text}");
    text
}

pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_BIN_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    for profile in ["release", "debug"] {
        let d = target.join(profile);
        if d.join("berthd").is_file()
            && d.join("berth-core").is_file()
            && d.join("berth-shim").is_file()
        {
            return d;
        }
    }
    panic!("berthd, berth-core and berth-shim not built: run `cargo build --release` first");
}

/// The previous release's binaries, built from this repository's history
/// by `contrib/previous-release.sh` (which contrib/test.sh runs first).
pub fn previous_release_dir() -> PathBuf {
    let dir = std::env::var_os("BERTH_PREVIOUS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/previous-release/bin"));
    assert!(
        dir.join("berthd").is_file(),
        "the previous release is not built in {}: run contrib/previous-release.sh",
        dir.display()
    );
    dir
}

pub struct Berth {
    pub root: PathBuf,
    pub socket: PathBuf,
    berthd: Option<Child>,
    /// A berthd that is not our child: started by `berthd upgrade`.
    detached_berthd: Option<u32>,
    extra_args: Vec<String>,
    /// Variables berthd's environment has besides the test's.
    env: Vec<(String, String)>,
    /// Where berthd is run from (it finds berth-core next to itself).
    bin: PathBuf,
    /// This instance's network slot (see `NetSlot`).
    pub net: NetSlot,
}

/// Tests run several private berthds at once on one host, so each gets
/// its own default bridge, subnets and aardvark-dns addresses: slot `n` is
/// held by an flock on /tmp/berth-test-netslots/<n> for the Berth's life.
pub struct NetSlot {
    pub n: u32,
    _lock: std::fs::File,
}

impl NetSlot {
    fn take() -> NetSlot {
        let dir = std::env::temp_dir().join("berth-test-netslots");
        std::fs::create_dir_all(&dir).unwrap();
        loop {
            for n in 0..64 {
                let f = std::fs::File::create(dir.join(n.to_string())).unwrap();
                let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
                // SAFETY: flock on a descriptor we own.
                if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                    return NetSlot { n, _lock: f };
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// berthd flags: bridge, --bip, the address pool, ports published
    /// without an address (-P) on 127.0.0.1 only, loopback DNS.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--bridge".into(),
            format!("berthtest{}", self.n),
            "--bip".into(),
            format!("10.250.{}.1/24", self.n),
            "--default-address-pool".into(),
            format!("base=10.{}.0.0/16,size=24", 128 + self.n),
            "--ip".into(),
            "127.0.0.1".into(),
            // Names no container has are asked of the host's loopback
            // (where nothing answers), never of a resolver off this host.
            "--dns".into(),
            "127.0.0.1".into(),
        ]
    }

    /// The IPv6 /48 this slot's tests take their IPv6 subnets from
    /// (`<prefix>:<n>::/64`): a unique local prefix of its own, so that
    /// tests running at once never route the same subnet.
    pub fn ipv6_prefix(&self) -> String {
        format!("fd42:{:x}", 0xb000 + self.n)
    }

    /// What this slot's networks left on the host: their bridges, and
    /// firewall rules for their subnets (netavark's per-network chains are
    /// reached from POSTROUTING, its forwarding rules sit in
    /// NETAVARK_FORWARD).
    pub fn leftovers(&self) -> Vec<String> {
        let subnets = [
            format!("10.250.{}.", self.n),
            format!("10.{}.", 128 + self.n),
        ];
        let v6 = [format!("{}:", self.ipv6_prefix())];
        let mut out = Vec::new();
        for (tool, subnets) in [("iptables", &subnets[..]), ("ip6tables", &v6[..])] {
            for (table, chain) in [("nat", "POSTROUTING"), ("filter", "NETAVARK_FORWARD")] {
                let rules = Command::new(tool)
                    .args(["-w", "-t", table, "-S", chain])
                    .stderr(Stdio::null())
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                out.extend(
                    rules
                        .lines()
                        .filter(|l| subnets.iter().any(|s| l.contains(&format!(" {s}"))))
                        .map(|l| format!("{tool} {table}: {l}")),
                );
            }
        }
        let links = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let bridge = format!(" berthtest{}:", self.n);
        out.extend(
            links
                .lines()
                .filter(|l| l.contains(&bridge))
                .map(str::to_string),
        );
        out
    }
}

/// What `docker` printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub(crate) fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with everything printed unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn out(&self) -> &str {
        self.stdout.trim_end()
    }
}

/// What any other command printed, for tests that run one themselves.
impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run::from(out)
    }
}

impl Berth {
    pub fn start() -> Berth {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Berth {
        Self::start_from(bin_dir(), extra)
    }

    /// [`Berth::start`] with berthd's environment extended by `env`.
    pub fn start_with_env(env: &[(&str, &str)]) -> Berth {
        Self::start_from_with_env(bin_dir(), &[], env)
    }

    /// Starts the binaries in `bin` (another build, such as the previous
    /// release's) rather than this tree's.
    pub fn start_from(bin: PathBuf, extra: &[&str]) -> Berth {
        Self::start_from_with_env(bin, extra, &[])
    }

    fn start_from_with_env(bin: PathBuf, extra: &[&str], env: &[(&str, &str)]) -> Berth {
        let root =
            std::env::temp_dir().join(format!("berth-test-{}-{}", std::process::id(), unique()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut b = Berth {
            socket: root.join("docker.sock"),
            root,
            berthd: None,
            detached_berthd: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            bin,
            net: NetSlot::take(),
        };
        b.spawn_berthd();
        b
    }

    pub fn data_root(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn exec_root(&self) -> PathBuf {
        self.root.join("exec")
    }

    /// Upgrades in place: starts a second berthd with `--takeover`, which
    /// takes the API socket from the running one; returns once the old one
    /// has drained and exited.
    pub fn takeover(&mut self) -> std::process::ExitStatus {
        let mut old = self.berthd.take().expect("berthd runs");
        self.extra_args.push("--takeover".into());
        self.spawn_berthd();
        self.extra_args.retain(|a| a != "--takeover");
        old.wait().unwrap()
    }

    /// Starts berthd the way systemd's socket activation does: the socket is
    /// bound here and passed as descriptor 3 with LISTEN_FDS and LISTEN_PID.
    pub fn spawn_berthd_socket_activated(&mut self) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let _ = std::fs::remove_file(&self.socket);
        let listener = std::os::unix::net::UnixListener::bind(&self.socket).unwrap();
        let fd = listener.as_raw_fd();
        let mut cmd = Command::new("sh");
        // LISTEN_PID must be berthd's own pid: set it in the shell that execs it.
        cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""])
            .arg(self.bin.join("berthd"));
        cmd.arg("-H").arg("unix:///nonexistent/ignored.sock");
        cmd.arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .args(self.net.args());
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.root.join("berthd.log"))
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: dup2 in the child between fork and exec only touches descriptors.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 onto itself would keep close-on-exec set.
                let rc = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.berthd = Some(cmd.spawn().unwrap());
        drop(listener);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http::request(&self.socket, "GET", "/_ping", None)
            .map(|r| r.status)
            .ok()
            != Some(200)
        {
            assert!(
                Instant::now() < deadline,
                "socket-activated berthd did not answer:\n{}",
                self.log()
            );
        }
    }

    /// Starts berthd and waits until its socket answers `/_ping`.
    pub fn spawn_berthd(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.root.join("berthd.log"))
            .unwrap();
        let child = Command::new(self.bin.join("berthd"))
            // Without a core beside it, berthd must not find one elsewhere either.
            .env(
                "PATH",
                if self.bin == bin_dir() {
                    std::env::var("PATH").unwrap_or_default()
                } else {
                    "/usr/sbin:/usr/bin:/sbin:/bin".into()
                },
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(self.berthd_flags())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start berthd");
        self.berthd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = http::request(&self.socket, "GET", "/_ping", None) {
                if resp.status == 200 {
                    return;
                }
            }
            if let Some(status) = self.berthd.as_mut().unwrap().try_wait().unwrap() {
                panic!("berthd exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not answer within 30 s:\n{}",
                self.log()
            );
            // Polling a socket for readiness: nothing else tells us when it listens.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The flags every berthd of this instance runs with.
    fn berthd_flags(&self) -> Vec<std::ffi::OsString> {
        let mut flags: Vec<std::ffi::OsString> = vec![
            "-H".into(),
            format!("unix://{}", self.socket.display()).into(),
            "--data-root".into(),
            self.data_root().into(),
            "--exec-root".into(),
            self.exec_root().into(),
            "--pidfile".into(),
            self.root.join("berthd.pid").into(),
        ];
        flags.extend(self.net.args().into_iter().map(Into::into));
        flags.extend(self.extra_args.iter().map(Into::into));
        flags
    }

    /// Runs `berthd upgrade` from `bin` with `options` (and this instance's
    /// flags). When it succeeds, the old berthd has handed over: we wait
    /// for it to drain and exit, and follow the new one (not our child) by
    /// its pid file from then on.
    pub fn upgrade(&mut self, bin: &Path, options: &[&str]) -> Run {
        let run = Run::from(
            Command::new(bin.join("berthd"))
                .arg("upgrade")
                .arg("--log-file")
                .arg(self.root.join("berthd.log"))
                .args(options)
                .args(self.berthd_flags())
                .stdin(Stdio::null())
                .output()
                .expect("run berthd upgrade"),
        );
        let replaced = run.stdout.contains("berthd replaced by");
        if replaced {
            if let Some(mut old) = self.berthd.take() {
                let status = old.wait().unwrap();
                assert!(status.success(), "the old berthd exited with {status}");
            } else if let Some(pid) = self.detached_berthd {
                assert!(wait_exit(pid as i32), "the old berthd {pid} did not exit");
            }
            let pid = std::fs::read_to_string(self.root.join("berthd.pid")).unwrap();
            self.detached_berthd = Some(pid.trim().parse().unwrap());
            self.bin = bin.to_path_buf();
        }
        run
    }

    /// Runs the next berthd from a copy that has no berth-core beside it
    /// and none on PATH, so that it cannot start a core.
    pub fn without_core(&mut self) {
        let alone = self.root.join("alone");
        std::fs::create_dir_all(&alone).unwrap();
        std::fs::copy(bin_dir().join("berthd"), alone.join("berthd")).unwrap();
        self.bin = alone;
    }

    /// Undoes `without_core`: the next berthd starts a core as usual.
    pub fn with_core(&mut self) {
        self.bin = bin_dir();
    }

    /// Flags for the next `spawn_berthd` (beyond the roots and socket).
    pub fn set_extra_args(&mut self, extra: &[&str]) {
        self.extra_args = extra.iter().map(|s| s.to_string()).collect();
    }

    /// Polls `docker inspect -f FORMAT NAME` until it renders `want` (for
    /// state the core changes on its own schedule: restarts, health).
    pub fn inspect_until(&self, name: &str, format: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self
                .docker(&["inspect", "-f", format, name])
                .ok()
                .out()
                .to_string();
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {format} is {now:?}, waited for {want:?}\n{}",
                self.log()
            );
        }
    }

    /// The host pid of a container's init.
    pub fn pid_of(&self, name: &str) -> i32 {
        self.docker(&["inspect", "-f", "{{.State.Pid}}", name])
            .ok()
            .out()
            .parse()
            .unwrap()
    }

    /// Waits until berthd is connected to a core again: `docker info`
    /// reports the core's version only while berthd can reach it.
    pub fn wait_for_core(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.docker(&["info", "--format", "{{.ContainerdCommit.ID}}"]);
            if r.code == 0 && r.out().starts_with("berth-core") && !r.out().contains("unreachable")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not reconnect to a core within 30 s:\n{}",
                self.log()
            );
        }
    }

    pub fn berthd_pid(&self) -> u32 {
        self.berthd
            .as_ref()
            .map(|c| c.id())
            .or(self.detached_berthd)
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("berthd.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.exec_root().join("berth-core.log")).unwrap_or_default()
    }

    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        docker_on(&self.socket, &self.root, args)
    }

    /// Runs the docker CLI with no stdin.
    pub fn docker(&self, args: &[&str]) -> Run {
        Run::from(
            self.docker_cmd(args)
                .stdin(Stdio::null())
                .output()
                .expect("run docker"),
        )
    }

    /// Runs the docker CLI with `input` on stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child = self
            .docker_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run::from(out)
    }

    /// Runs the docker CLI under a pseudo-terminal (util-linux `script`),
    /// for `-t`/`-it` cases. Returns what the terminal showed.
    pub fn docker_tty(&self, args: &str) -> Run {
        let cmd = format!("docker {args}");
        Run::from(
            Command::new("script")
                .args(["-qefc", &cmd, "/dev/null"])
                .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
                .env("DOCKER_CONFIG", self.root.join("docker-config"))
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    pub fn load_busybox(&self) {
        let tar = images::busybox_tar();
        self.docker(&["load", "-i", tar.to_str().unwrap()]).ok();
    }

    pub fn api(&self, method: &str, path: &str, body: Option<&[u8]>) -> http::Response {
        http::request(&self.socket, method, path, body).expect("request to berthd")
    }

    /// Kills berthd with SIGKILL (containers and the core stay).
    pub fn kill_berthd(&mut self) {
        if let Some(mut c) = self.berthd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What a reboot does to a Berth whose berthd is already gone: every
    /// process of the instance dies, mounts go, and the exec-root (a tmpfs
    /// on real machines) is emptied.
    pub fn power_off(&mut self) {
        assert!(self.berthd.is_none(), "kill berthd first");
        // The containers: their init pids are in the core's task directories.
        let tasks = self.exec_root().join("core/tasks/berth");
        let ids: Vec<String> = std::fs::read_dir(&tasks)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for id in &ids {
            if let Some(pid) = std::fs::read_to_string(tasks.join(id).join("init.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                unsafe_kill(pid, libc::SIGKILL);
                wait_exit(pid);
            }
        }
        for (pid, _) in self.processes() {
            unsafe_kill(pid as i32, libc::SIGKILL);
            wait_exit(pid as i32);
        }
        // The containers themselves: children of the shims, now orphans.
        self.unmount_all();
        let _ = std::fs::remove_dir_all(self.exec_root());
        // Their cgroups, which a reboot would not keep either.
        for ctrl in std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            for id in &ids {
                let _ = std::fs::remove_dir(ctrl.join("berth").join(id));
            }
        }
    }

    fn unmount_all(&self) {
        unmount_below(&self.root);
    }

    /// Processes of this instance (their command line names our root).
    pub fn processes(&self) -> Vec<(u32, String)> {
        processes_mentioning(&self.root)
    }

    /// Mount points below our root.
    pub fn mounts(&self) -> Vec<String> {
        mounts_below(&self.root)
    }

    /// Stops everything, then fails if a process or mount was left behind.
    pub fn finish(mut self) {
        let rm = self.shutdown();
        let procs = self.processes();
        let mounts = self.mounts();
        let network = self.net.leftovers();
        let log = self.log();
        let _ = std::fs::remove_dir_all(&self.root);
        assert!(rm.is_none(), "docker rm -f failed: {rm:?}\n{log}");
        assert!(procs.is_empty(), "processes left behind: {procs:?}\n{log}");
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}\n{log}");
        assert!(
            network.is_empty(),
            "network state left behind: {network:?}\n{log}"
        );
    }

    /// Pids of container inits, from the OCI runtime's state files under
    /// `<exec-root>/core/runtime/<runtime>/<id>/state.json`.
    fn container_inits(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let Ok(runtimes) = std::fs::read_dir(self.exec_root().join("core/runtime")) else {
            return out;
        };
        for rt in runtimes.flatten() {
            for c in std::fs::read_dir(rt.path()).into_iter().flatten().flatten() {
                let Ok(raw) = std::fs::read(c.path().join("state.json")) else {
                    continue;
                };
                let v: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
                let Some(pid) = v["init_process_pid"].as_i64().filter(|p| *p > 0) else {
                    continue;
                };
                // Only if it is still that process (pids are reused): its
                // start time, field 22 of /proc/<pid>/stat, must match.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let start = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(19))
                    .and_then(|s| s.parse::<u64>().ok());
                if start.is_some() && start == v["init_process_start"].as_u64() {
                    out.push(pid as i32);
                }
            }
        }
        out
    }

    /// Removes every container, stops berthd, then kills whatever is
    /// left. Returns what `docker rm -f` complained about, if anything.
    fn shutdown(&mut self) -> Option<String> {
        let mut complaint = None;
        if self.berthd.is_some() || self.detached_berthd.is_some() {
            complaint = remove_all_containers(|args| self.docker(args));
        }
        if let Some(mut c) = self.berthd.take() {
            unsafe_kill(c.id() as i32, libc::SIGTERM);
            let _ = c.wait();
        }
        if let Some(pid) = self.detached_berthd.take() {
            unsafe_kill(pid as i32, libc::SIGTERM);
            wait_exit(pid as i32);
        }
        // Containers still running (a test that failed while no berthd
        // ran, so `rm -f` could not reach them): their inits by the pid
        // the runtime recorded; their cmdlines do not name our root.
        for pid in self.container_inits() {
            unsafe_kill(pid, libc::SIGKILL);
            wait_exit(pid);
        }
        // berth-core (and any shim still alive) by pid; wait on pidfds, since
        // their parent is init, which reaps late. The core gets SIGTERM first
        // so that it finishes deleting tasks.
        for (pid, cmd) in self.processes() {
            if cmd.contains("berth-core") {
                unsafe_kill(pid as i32, libc::SIGTERM);
                wait_exit(pid as i32);
            }
        }
        for (pid, _) in self.processes() {
            unsafe_kill(pid as i32, libc::SIGKILL);
            wait_exit(pid as i32);
        }
        self.unmount_all();
        complaint
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        // Best effort when a test panicked before finish(); keep the logs.
        if std::thread::panicking() {
            keep_log(&self.root, &self.log(), "berthd and berth-core logs");
        }
        let _ = self.shutdown();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The docker CLI against the daemon on `socket`, with its own config
/// directory under `root` and no context from the environment.
pub fn docker_on(socket: &Path, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", root.join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .args(args);
    cmd
}

/// `docker rm -f` of every container a daemon has; what it complained
/// about, if anything.
pub fn remove_all_containers(docker: impl Fn(&[&str]) -> Run) -> Option<String> {
    let ids = docker(&["ps", "-aq"]).stdout;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return None;
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids);
    let rm = docker(&args);
    (rm.code != 0).then_some(rm.stderr)
}

/// Mount points below `root`, from /proc/self/mountinfo.
pub fn mounts_below(root: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = root.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&root))
        .map(str::to_string)
        .collect()
}

/// Detaches every mount below `root`, innermost first.
pub fn unmount_below(root: &Path) {
    for m in mounts_below(root).iter().rev() {
        let c = std::ffi::CString::new(m.as_str()).unwrap();
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Keeps a failed test's daemon log beside its (removed) root in /tmp.
pub fn keep_log(root: &Path, log: &str, what: &str) {
    let keep = std::env::temp_dir().join(format!(
        "{}.log",
        root.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::write(&keep, log);
    eprintln!("{what} kept in {}", keep.display());
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn processes_mentioning(root: &Path) -> Vec<(u32, String)> {
    let needle = root.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(&needle) {
            out.push((pid, cmdline));
        }
    }
    out
}

pub fn unsafe_kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits (up to 10 s) for a process that is not our child to exit, by pidfd.
pub fn wait_exit(pid: i32) -> bool {
    // SAFETY: pidfd_open takes plain integers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return true; // already gone
    }
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    // SAFETY: closing the descriptor we opened.
    unsafe { libc::close(fd) };
    n == 1
}

/// The parent pid of a process, from /proc.
pub fn ppid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Reads everything from a unix socket request (used by `http`).
pub(crate) fn read_all(mut s: UnixStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => Ok(buf),
        // A server that closed without reading all we sent resets the
        // connection after its answer, which we have read by then.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty() => Ok(buf),
        Err(e) => Err(e),
    }
}

/// A port nothing listens on right now (the kernel's choice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET http://127.0.0.1:port/path from the host, by hand (no proxy, no
/// client library): the body, or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in
/// `dir`; `name` prefixes the files so that two CAs can share a directory.
pub fn make_certs(dir: &Path, name: &str) {
    let script = format!(
        r#"set -e
cd '{dir}'
key() {{ openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }}
key {name}-ca-key.pem
openssl req -x509 -new -key {name}-ca-key.pem -out {name}-ca.pem -days 1 -subj /CN={name}-ca
for who in server client; do
  key {name}-$who-key.pem
  openssl req -new -key {name}-$who-key.pem -out {name}-$who.csr -subj /CN=$who
done
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for who in server client; do
  openssl x509 -req -in {name}-$who.csr -CA {name}-ca.pem -CAkey {name}-ca-key.pem \
    -CAcreateserial -out {name}-$who-cert.pem -days 1 -extfile $who.ext 2>/dev/null
done
"#,
        dir = dir.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
