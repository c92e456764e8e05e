//! `--metrics-addr`: Debian's Prometheus scrapes berthd as it would scrape
//! dockerd, and its queries answer what happened on the engine.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_compat_tests::{bin_dir, free_port, http_get, Berth};

/// A Prometheus server on 127.0.0.1 scraping one target every second,
/// with its storage in a directory of its own. Dropped: stopped, removed.
struct Prometheus {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("berth-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus (install it with contrib/setup.sh --deps)");
        let p = Prometheus { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/-/ready").is_none_or(|b| !b.contains("Ready")) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The value an instant query gives now, if any series answers.
    fn query(&self, q: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--data-urlencode"])
            .arg(format!("query={q}"))
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_string)
    }

    /// Waits until the query answers `want`: the next scrapes bring it.
    fn wait_for(&self, q: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.query(q);
            if got.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{q}: {got:?}, not {want:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_what_the_engine_did() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let b = Berth::start_with(&["--metrics-addr", &addr]);
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "m1", "busybox", "sleep", "300"])
        .ok();
    b.docker(&["run", "-d", "--name", "m2", "busybox", "sleep", "300"])
        .ok();
    b.docker(&["run", "--name", "m3", "busybox", "true"]).ok();
    b.docker(&["pause", "m2"]).ok();

    // What dockerd serves, as it names it.
    let text = http_get(port, "/metrics").expect("metrics answer");
    for line in [
        "# TYPE engine_daemon_container_actions_seconds histogram",
        "engine_daemon_container_states_containers{state=\"paused\"} 1",
        "builder_builds_triggered_total 0",
        "engine_daemon_engine_cpus_cpus ",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }

    let prom = Prometheus::start(port);
    prom.wait_for("up{job=\"berth\"}", "1");
    for (q, want) in [
        ("engine_daemon_container_states_containers{state=\"running\"}", "1"),
        ("engine_daemon_container_states_containers{state=\"paused\"}", "1"),
        ("engine_daemon_container_states_containers{state=\"stopped\"}", "1"),
        ("engine_daemon_container_actions_seconds_count{action=\"start\"}", "3"),
        (
            "sum(berth_api_request_duration_seconds_count{method=\"POST\",route=\"/containers/create\"})",
            "3",
        ),
        // m1 and the paused m2 each keep a shim.
        ("berth_shims", "2"),
    ] {
        prom.wait_for(q, want);
    }
    // The CLI removes each container with a request of its own.
    b.docker(&["rm", "-f", "m1", "m2", "m3"]).ok();
    prom.wait_for(
        "engine_daemon_container_actions_seconds_count{action=\"delete\"}",
        "3",
    );
    prom.wait_for("berth_shims", "0");
    drop(prom);
    b.finish();
}

#[test]
fn a_bad_metrics_address_stops_berthd_before_it_starts() {
    let out = Command::new(bin_dir().join("berthd"))
        .args(["--validate", "--metrics-addr", "localhost"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid metrics-addr \"localhost\""), "{err}");
}
