//! Randomized crash test: container operations through the docker CLI while
//! berthd or berth-core is killed (SIGKILL) at random moments; afterwards
//! every container's record must match reality and nothing may leak.
//!
//! `BERTH_CRASH_ITERATIONS` sets the number of rounds (CI runs the default,
//! a short version); `BERTH_CRASH_SEED` replays a run (the seed is printed).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_compat_tests::{comm, ppid, unsafe_kill, wait_exit, Berth};

/// xorshift64*: enough randomness for choosing moments, and replayable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn core_pid(b: &Berth) -> Option<i32> {
    b.processes()
        .into_iter()
        .find(|(_, c)| c.contains("berth-core"))
        .map(|(p, _)| p as i32)
}

#[test]
fn random_kills_leave_consistent_state_and_no_leaks() {
    let iterations: u64 = std::env::var("BERTH_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {iterations} iterations, BERTH_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut b = Berth::start();
    b.load_busybox();
    let mut ids: Vec<String> = Vec::new();
    // Every container ever seen, for the final cgroup check.
    let mut all_ids: Vec<String> = Vec::new();

    for i in 0..iterations {
        // One operation through the CLI; a kill may land in the middle of it.
        let op = rng.below(4);
        let victim = rng.below(3); // 0: none, 1: berthd, 2: berth-core
        let delay = Duration::from_millis(rng.below(60));
        let target = match victim {
            1 => Some(b.berthd_pid() as i32),
            2 => core_pid(&b),
            _ => None,
        };
        let killer = target.map(|pid| {
            std::thread::spawn(move || {
                // Random moment, not synchronisation: any point is valid.
                std::thread::sleep(delay);
                unsafe_kill(pid, libc::SIGKILL);
                wait_exit(pid);
            })
        });
        let name = format!("crash{i}");
        let r = match op {
            0 => b.docker(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]),
            1 => b.docker(&[
                "run",
                "-d",
                "--name",
                &name,
                "busybox",
                "sh",
                "-c",
                &format!("exit {}", i % 7),
            ]),
            2 => match ids.last() {
                Some(id) => b.docker(&["stop", "-t", "0", id]),
                None => b.docker(&["ps"]),
            },
            _ => match ids.first() {
                Some(id) => b.docker(&["rm", "-f", id]),
                None => b.docker(&["ps"]),
            },
        };
        if op < 2 && r.code == 0 {
            ids.push(r.out().to_string());
        }
        if let Some(k) = killer {
            k.join().unwrap();
        }
        if victim == 1 {
            b.kill_berthd();
            b.spawn_berthd();
        }
        b.wait_for_core();
        // Containers whose create succeeded but whose output we lost.
        for line in b.docker(&["ps", "-aq", "--no-trunc"]).ok().stdout.lines() {
            if !ids.iter().any(|x| x == line) {
                ids.push(line.to_string());
            }
        }
        for id in &ids {
            if !all_ids.contains(id) {
                all_ids.push(id.clone());
            }
        }
        ids.retain(|id| b.docker(&["inspect", id]).code == 0);
    }

    // Settle: every record must match reality once the engine has caught up.
    let deadline = Instant::now() + Duration::from_secs(60);
    'settle: loop {
        assert!(
            Instant::now() < deadline,
            "state did not settle:\n{}",
            b.log()
        );
        for id in &ids {
            let v: serde_json::Value =
                serde_json::from_str(&b.docker(&["inspect", id]).ok().stdout).unwrap();
            let state = &v[0]["State"];
            let name = v[0]["Name"]
                .as_str()
                .unwrap()
                .trim_start_matches('/')
                .to_string();
            let pid = state["Pid"].as_i64().unwrap();
            match state["Status"].as_str().unwrap() {
                "running" => {
                    // A real process, the child of a shim.
                    if pid <= 0 || ppid(pid as u32).map(comm).as_deref() != Some("berth-shim") {
                        continue 'settle;
                    }
                }
                "exited" => {
                    let code = state["ExitCode"].as_i64().unwrap();
                    let n: u64 = name.trim_start_matches("crash").parse().unwrap();
                    let cmd = v[0]["Config"]["Cmd"].to_string();
                    if cmd.contains("exit") {
                        // Ran to its end: its own exit code (or killed by a stop).
                        assert!(
                            code == (n % 7) as i64 || code == 137,
                            "{name}: exit code {code} ({cmd})"
                        );
                    } else {
                        assert!(
                            code == 137 || code == 143,
                            "{name}: sleep ended with {code}"
                        );
                    }
                }
                "created" => {}
                other => panic!("{name}: unexpected status {other}"),
            }
        }
        break;
    }
    // Then remove everything and look for leftovers of any kind.
    for id in &ids {
        b.docker(&["rm", "-f", id]).ok();
    }
    assert_eq!(b.docker(&["ps", "-aq"]).ok().out(), "");
    let shims: Vec<_> = b
        .processes()
        .into_iter()
        .filter(|(_, c)| c.contains("berth-shim"))
        .collect();
    assert!(shims.is_empty(), "shims left: {shims:?}");
    let tasks = b.exec_root().join("core/tasks/berth");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&tasks).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(
            Instant::now() < deadline,
            "task directories left: {:?}",
            std::fs::read_dir(&tasks)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect::<Vec<_>>()
        );
    }
    b.finish();
    for ctrl in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for id in &all_ids {
            assert!(
                !ctrl.path().join("berth").join(id).exists(),
                "cgroup left: {}/berth/{id}",
                ctrl.path().display()
            );
        }
    }
}
