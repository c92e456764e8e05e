//! `berthd upgrade`: the previous release (built from this repository's
//! history by contrib/previous-release.sh), running 200 containers,
//! replaced by this build, core first and berthd second, while clients keep
//! working; a core takeover
//! alone; and new binaries that fail, which leave the old ones serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_compat_tests::{bin_dir, http, previous_release_dir, wait_exit, Berth};

/// Containers that ran to their end, with the exit code `wait` gave;
/// signalled at each.
type Ran = Arc<(Mutex<Vec<(String, i64)>>, Condvar)>;

/// Clients looping while an upgrade happens: one lists containers (berthd
/// alone answers), one runs short containers through the API (create,
/// start, wait, delete: each needs the core, and each container exits),
/// and, when asked, one runs `docker run --rm` of a container that exits
/// with 3: its wait (condition `removed`) may be served by the old berthd
/// while the new one applies the exit and removes the container, and must
/// still give the code (the previous release does not promise that).
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    failures: Arc<Mutex<Vec<String>>>,
    ran: Ran,
}

impl Load {
    fn start(b: &Berth, run_rm: bool) -> Load {
        let socket = &b.socket;
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let ran: Ran = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let lister = {
            let (stop, failures, socket) = (stop.clone(), failures.clone(), socket.to_path_buf());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match http::request(&socket, "GET", "/containers/json?all=1", None) {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failures.lock().unwrap().push(format!(
                            "list: {} {}",
                            r.status,
                            r.text()
                        )),
                        Err(e) => failures.lock().unwrap().push(format!("list: {e}")),
                    }
                }
            })
        };
        let runner = {
            let (stop, failures, ran, socket) = (
                stop.clone(),
                failures.clone(),
                ran.clone(),
                socket.to_path_buf(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match run_one(&socket) {
                        Ok(done) => ran.0.lock().unwrap().push(done),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    ran.1.notify_all();
                }
            })
        };
        let removed = run_rm.then(|| {
            let (stop, failures) = (stop.clone(), failures.clone());
            let (socket, root) = (b.socket.clone(), b.root.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let run = berth_compat_tests::docker_on(
                        &socket,
                        &root,
                        &["run", "--rm", "busybox", "sh", "-c", "exit 3"],
                    )
                    .stdin(std::process::Stdio::null())
                    .output()
                    .expect("run docker");
                    if run.status.code() != Some(3) {
                        failures.lock().unwrap().push(format!(
                            "run --rm: exit {:?}, {}",
                            run.status.code(),
                            String::from_utf8_lossy(&run.stderr)
                        ));
                    }
                }
            })
        });
        Load {
            stop,
            threads: [Some(lister), Some(runner), removed]
                .into_iter()
                .flatten()
                .collect(),
            failures,
            ran,
        }
    }

    /// Waits until `n` more containers have run, failing on any failure.
    fn wait_for_runs(&self, n: usize) {
        let (list, signal) = &*self.ran;
        let mut ran = list.lock().unwrap();
        let target = ran.len() + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while ran.len() < target {
            let failures = self.failures.lock().unwrap().clone();
            assert!(failures.is_empty(), "requests failed: {failures:?}");
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the load made no progress");
            ran = signal.wait_timeout(ran, left).unwrap().0;
        }
    }

    fn stop(self) -> Vec<(String, i64)> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        assert!(
            failures.is_empty(),
            "requests failed during the upgrade: {failures:?}"
        );
        let ran = self.ran.0.lock().unwrap().clone();
        ran
    }
}

/// One short container through the API; its id and exit code.
fn run_one(socket: &Path) -> Result<(String, i64), String> {
    let expect = |what: &str, r: std::io::Result<http::Response>, status: u16| match r {
        Ok(r) if r.status == status => Ok(r),
        Ok(r) => Err(format!("{what}: {} {}", r.status, r.text())),
        Err(e) => Err(format!("{what}: {e}")),
    };
    let body = br#"{"Image":"busybox","Cmd":["true"]}"#;
    let created = expect(
        "create",
        http::request(socket, "POST", "/containers/create", Some(body)),
        201,
    )?;
    let id = created.json()["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    expect(
        "start",
        http::request(socket, "POST", &format!("/containers/{id}/start"), None),
        204,
    )?;
    let waited = expect(
        "wait",
        http::request(socket, "POST", &format!("/containers/{id}/wait"), None),
        200,
    )?;
    let code = waited.json()["StatusCode"].as_i64().unwrap_or(-1);
    expect(
        "delete",
        http::request(socket, "DELETE", &format!("/containers/{id}"), None),
        204,
    )?;
    Ok((id, code))
}

/// The pids of this instance's berth-core processes.
fn cores(b: &Berth) -> Vec<u32> {
    b.processes()
        .into_iter()
        .filter(|(pid, _)| berth_compat_tests::comm(*pid) == "berth-core")
        .map(|(pid, _)| pid)
        .collect()
}

/// The core's event log: sequence numbers that follow each other with no
/// gap and no repeat, and exactly one exit for each container that ran.
fn check_core_events(b: &Berth, ran: &[(String, i64)]) {
    let text = std::fs::read_to_string(b.exec_root().join("core/events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_u64().unwrap(),
            pair[0]["seq"].as_u64().unwrap() + 1,
            "the event log skips or repeats: {} then {}",
            pair[0],
            pair[1]
        );
    }
    let mut exits: HashMap<&str, Vec<i64>> = HashMap::new();
    for ev in &events {
        if ev["kind"] == "exit" {
            exits
                .entry(ev["id"].as_str().unwrap())
                .or_default()
                .push(ev["exit_code"].as_i64().unwrap_or(-1));
        }
    }
    for (id, code) in ran {
        assert_eq!(code, &0, "{id} exited with {code}");
        assert_eq!(
            exits.get(id.as_str()).map(Vec::as_slice),
            Some(&[0][..]),
            "exits recorded for {id}"
        );
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Lines `docker logs` shows for a container.
fn log_lines(b: &Berth, name: &str) -> usize {
    b.docker(&["logs", name]).ok().stdout.lines().count()
}

/// Waits until a container has logged more than `than` lines.
fn logs_grow(b: &Berth, name: &str, than: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_lines(b, name) <= than {
        assert!(Instant::now() < deadline, "{name} stopped logging");
    }
}

/// Starts `n` containers that print a line every second, four at a time,
/// through the API; their ids. Named by the test: the previous release
/// could give two creates at once the same generated name (fixed since).
fn start_fleet(socket: &Path, n: usize) -> Vec<String> {
    let body = br#"{"Image":"busybox","Labels":{"fleet":"1"},"Cmd":["sh","-c","while :; do echo tick; sleep 1; done"]}"#;
    let per = n.div_ceil(4);
    let starters: Vec<_> = (0..4)
        .map(|t| {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        let path = format!("/containers/create?name=fleet-{t}-{i}");
                        let r = http::request(&socket, "POST", &path, Some(body)).unwrap();
                        assert_eq!(r.status, 201, "{}", r.text());
                        let id = r.json()["Id"].as_str().unwrap().to_string();
                        let path = format!("/containers/{id}/start");
                        let r = http::request(&socket, "POST", &path, None).unwrap();
                        assert_eq!(r.status, 204, "{}", r.text());
                        id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = starters
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.truncate(n);
    ids
}

/// Each container's state and pid, as `docker inspect` shows them.
fn states(b: &Berth, ids: &[String]) -> Vec<String> {
    let mut args = vec!["inspect", "-f", "{{.State.Status}} {{.State.Pid}}"];
    args.extend(ids.iter().map(String::as_str));
    b.docker(&args)
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_previous_release_is_upgraded_in_place_refusing_nothing() {
    let mut b = Berth::start_from(previous_release_dir(), &[]);
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done",
    ])
    .ok();
    let ticker = b.pid_of("ticker");
    let fleet = start_fleet(&b.socket, 200);
    let fleet_before = states(&b, &fleet);
    assert!(fleet_before.iter().all(|s| s.starts_with("running ")));
    let old_cores = cores(&b);
    assert_eq!(old_cores.len(), 1, "{old_cores:?}");

    let load = Load::start(&b, false);
    load.wait_for_runs(5);
    let run = b.upgrade(&bin_dir(), &[]);
    eprintln!("{}", run.stdout);
    assert_eq!(run.code, 0, "{run:?}\n{}", b.log());
    assert!(run.stdout.contains("replaced by berth-core"), "{run:?}");
    assert!(run.stdout.contains("berthd replaced by"), "{run:?}");
    load.wait_for_runs(5);
    let ran = load.stop();

    // The old core handed over and exited; one core serves.
    assert!(wait_exit(old_cores[0] as i32), "the old core still runs");
    let new_cores = cores(&b);
    assert_eq!(new_cores.len(), 1, "{new_cores:?}");
    assert_ne!(new_cores, old_cores);
    // The containers kept running and logging.
    assert_eq!(b.pid_of("ticker"), ticker);
    assert_eq!(states(&b, &fleet), fleet_before);
    logs_grow(&b, "ticker", log_lines(&b, "ticker"));
    logs_grow(&b, &fleet[199], log_lines(&b, &fleet[199]));
    check_core_events(&b, &ran);

    // The upgraded installation runs, stops and upgrades again.
    assert_eq!(
        b.docker(&["run", "--rm", "busybox", "echo", "after"])
            .ok()
            .out(),
        "after"
    );
    // This build replaced by itself, under load with `run --rm` as well.
    let load = Load::start(&b, true);
    load.wait_for_runs(5);
    let again = b.upgrade(&bin_dir(), &[]);
    assert_eq!(again.code, 0, "{again:?}");
    load.wait_for_runs(5);
    load.stop();
    b.docker(&["kill", "ticker"]).ok();
    b.inspect_until("ticker", "{{.State.ExitCode}}", "137");
    b.finish();
}

#[test]
fn a_core_takeover_alone_reports_every_exit_once() {
    let mut b = Berth::start();
    b.load_busybox();
    let since = unix_now().to_string();
    let old_cores = cores(&b);
    let load = Load::start(&b, true);
    load.wait_for_runs(5);
    let berthd = b.berthd_pid();
    let run = b.upgrade(&bin_dir(), &["--core-only"]);
    eprintln!("{}", run.stdout);
    assert_eq!(run.code, 0, "{run:?}\n{}", b.log());
    assert!(!run.stdout.contains("berthd replaced"), "{run:?}");
    load.wait_for_runs(5);
    let ran = load.stop();
    assert_eq!(b.berthd_pid(), berthd);
    assert!(wait_exit(old_cores[0] as i32), "the old core still runs");
    check_core_events(&b, &ran);
    // berthd saw each exit once, with its code.
    let until = (unix_now() + 1).to_string();
    let dies = b
        .docker(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.ID}} {{index .Actor.Attributes \"exitCode\"}}",
        ])
        .ok()
        .stdout;
    let mut seen: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in dies.lines() {
        let (id, code) = line.split_once(' ').unwrap();
        seen.entry(id).or_default().push(code);
    }
    for (id, _) in &ran {
        assert_eq!(
            seen.get(id.as_str()).map(Vec::as_slice),
            Some(&["0"][..]),
            "die events of {id}"
        );
    }
    b.finish();
}

/// A script standing in for a new binary.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_broken_new_binary_leaves_the_old_one_serving() {
    // This berthd speaks core protocol 4 at most.
    let mut b = Berth::start_with(&["--core-protocol", "4"]);
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"])
        .ok();
    let sleeper = b.pid_of("sleeper");
    let core = cores(&b);
    let berthd = b.berthd_pid();
    let broken = b.root.join("broken");
    let serving = |b: &Berth| {
        assert_eq!(cores(b), core);
        assert_eq!(b.berthd_pid(), berthd);
        assert_eq!(b.pid_of("sleeper"), sleeper);
        assert_eq!(
            b.docker(&["run", "--rm", "busybox", "echo", "still"])
                .ok()
                .out(),
            "still"
        );
    };

    // A core that does not start.
    let dead = script(
        &broken,
        "dead-core",
        "echo 'berth-core: missing library' >&2; exit 3",
    );
    let run = b.upgrade(&bin_dir(), &["--berth-core", dead.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("berth-core was not replaced")
            && run
                .stderr
                .contains("exited (exit status: 3) before serving")
            && run.stderr.contains("berth-core: missing library")
            && run.stderr.contains("keeps serving"),
        "{run:?}"
    );
    serving(&b);

    // A core that no longer serves the protocol the running berthd uses.
    let narrow = script(
        &broken,
        "narrow-core",
        &format!(
            "exec {} --min-protocol 5 \"$@\"",
            bin_dir().join("berth-core").display()
        ),
    );
    let run = b.upgrade(&bin_dir(), &["--berth-core", narrow.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("berth-core was not replaced")
            && run.stderr.contains("serves protocol versions 5..=")
            && run
                .stderr
                .contains(", but the running berthd uses version 4"),
        "{run:?}"
    );
    serving(&b);

    // A berthd that does not start: the core is replaced (by this build),
    // the berthd is not.
    let dead = script(
        &broken,
        "dead-berthd",
        &format!(
            "exec {} --no-such-flag \"$@\"",
            bin_dir().join("berthd").display()
        ),
    );
    let run = b.upgrade(&bin_dir(), &["--berthd", dead.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("replaced by berth-core")
            && run.stderr.contains("berthd was not replaced")
            && run.stderr.contains("--no-such-flag"),
        "{run:?}"
    );
    assert!(wait_exit(core[0] as i32), "the old core still runs");
    assert_eq!(b.berthd_pid(), berthd);
    assert_eq!(b.pid_of("sleeper"), sleeper);
    assert_eq!(
        b.docker(&["run", "--rm", "busybox", "echo", "after"])
            .ok()
            .out(),
        "after"
    );
    b.finish();
}

#[test]
fn a_core_stopped_with_sigterm_exits_and_berthd_starts_another() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"])
        .ok();
    let sleeper = b.pid_of("sleeper");
    let core = cores(&b);
    // berthd follows the core's event stream: the core must end it to stop.
    berth_compat_tests::unsafe_kill(core[0] as i32, libc::SIGTERM);
    assert!(
        wait_exit(core[0] as i32),
        "berth-core did not exit on SIGTERM\n{}",
        b.log()
    );
    b.wait_for_core();
    assert_ne!(cores(&b), core);
    assert_eq!(b.pid_of("sleeper"), sleeper);
    assert_eq!(
        b.docker(&["run", "--rm", "busybox", "echo", "again"])
            .ok()
            .out(),
        "again"
    );
    b.finish();
}
