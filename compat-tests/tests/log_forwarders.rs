//! The fluentd and gelf log drivers, tested against real receivers: the
//! OpenTelemetry Collector's fluent forward receiver (fluentd's forward
//! protocol; contrib/setup.sh builds it into target/tools) writing each
//! record it takes to a file, and graygelf's GELF server (npm) printing
//! each message it assembles from plain, compressed and chunked
//! datagrams. dockerd 20.10 sends to the same receivers, and what each
//! engine's messages say must read alike. GELF over TCP (which graygelf
//! does not take) is compared with dockerd's bytes as they arrive.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_compat_tests::dockerd::Dockerd;
use berth_compat_tests::{workspace_root, Berth, Run};

/// Waits up to 30 s for `ready` to give something.
fn within<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port for a receiver, outside the kernel's ephemeral range (where
/// `berth_compat_tests::free_port`'s come from and outgoing connections take theirs), so
/// that nothing else takes it before the receiver binds it: each test
/// process has its own ten, by its pid.
fn quiet_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 1000) as u16 * 10;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst) % 10;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

fn tools() -> PathBuf {
    workspace_root().join("target/tools")
}

/// The collector, listening for the forward protocol on 127.0.0.1.
struct Collector {
    dir: PathBuf,
    port: u16,
    child: Child,
}

/// One record as the receiver took it: the body (the `log` field), the
/// other fields, the time in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Record {
    body: String,
    fields: BTreeMap<String, String>,
    nanos: u128,
}

impl Collector {
    fn start(port: u16) -> Collector {
        let bin = tools().join("berth-otelcol");
        assert!(
            bin.exists(),
            "{} is missing: bash contrib/setup.sh --deps builds it",
            bin.display()
        );
        let dir = std::env::temp_dir().join(format!("berth-otelcol-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "receivers:\n  fluent_forward:\n    endpoint: 127.0.0.1:{port}\n\
             exporters:\n  file:\n    path: {}/records.json\n    flush_interval: 20ms\n\
             service:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    logs:\n\
             \x20     receivers: [fluent_forward]\n      exporters: [file]\n",
            dir.display()
        );
        std::fs::write(dir.join("config.yaml"), config).unwrap();
        let log = std::fs::File::create(dir.join("collector.out")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut c = Collector { dir, port, child };
        // Ready once it says so (after its receiver bound the port).
        within("the collector to start", || {
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!("the collector exited ({status}): {}", c.out());
            }
            c.out().contains("Everything is ready").then_some(())
        });
        c
    }

    fn out(&self) -> String {
        std::fs::read_to_string(self.dir.join("collector.out")).unwrap_or_default()
    }

    fn address(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The records received so far with this fluent tag.
    fn records(&self, tag: &str) -> Vec<Record> {
        let text = std::fs::read_to_string(self.dir.join("records.json")).unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines() {
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
                continue; // a flush under way
            };
            let all = doc["resourceLogs"].as_array().into_iter().flatten();
            let scopes = all.flat_map(|r| r["scopeLogs"].as_array().into_iter().flatten());
            for rec in scopes.flat_map(|s| s["logRecords"].as_array().into_iter().flatten()) {
                let mut fields = BTreeMap::new();
                for a in rec["attributes"].as_array().into_iter().flatten() {
                    let value = a["value"]["stringValue"].as_str().unwrap_or("?");
                    fields.insert(a["key"].as_str().unwrap().to_string(), value.to_string());
                }
                if fields.get("fluent.tag").map(String::as_str) != Some(tag) {
                    continue;
                }
                out.push(Record {
                    body: rec["body"]["stringValue"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    fields,
                    nanos: rec["timeUnixNano"].as_str().unwrap().parse().unwrap(),
                });
            }
        }
        out
    }

    fn wait_for(&self, tag: &str, count: usize) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.records(tag);
            if got.len() >= count {
                return got;
            }
            if Instant::now() > deadline {
                let short: Vec<(String, &BTreeMap<String, String>)> = got
                    .iter()
                    .map(|r| (r.body.chars().take(20).collect(), &r.fields))
                    .collect();
                panic!(
                    "{} records tagged {tag}, wanted {count}: {short:?}\ncollector: {}",
                    got.len(),
                    self.out()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a record says that two engines share: its time and the ids
/// (container, partial line) go, the tag's engine name is made alike.
fn comparable(records: &[Record], own_id: &str) -> Vec<Record> {
    let mut out: Vec<Record> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            assert_eq!(r.fields.remove("container_id").as_deref(), Some(own_id));
            if let Some(id) = r.fields.remove("partial_id") {
                assert!(
                    id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
                    "{id}"
                );
            }
            r.fields.remove("fluent.tag");
            r.nanos = 0;
            r
        })
        .collect();
    out.sort();
    out
}

const SCRIPT: &str = "echo hello; echo; echo oops >&2; \
                      head -c 20000 /dev/zero | tr '\\0' x; echo; printf part";

fn id_of(docker: &dyn Fn(&[&str]) -> Run, name: &str) -> String {
    docker(&["inspect", "-f", "{{.Id}}", name])
        .ok()
        .out()
        .to_string()
}

/// The same container on Berth and on dockerd, to one collector: the same
/// records, with empty lines, stderr, a line longer than the copier's
/// 16 KiB pieces (two partial records), an unfinished last line, and the
/// `labels` and `env` attributes; and `docker logs` reads the cache.
#[test]
fn fluentd_records_read_as_dockerds() {
    let collector = Collector::start(quiet_port());
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b = Berth::start();
    dockerd.load_busybox();
    b.load_busybox();
    let address = format!("fluentd-address={}", collector.address());
    let args = |engine: &str| -> Vec<String> {
        [
            "run",
            "--name",
            "fwd",
            "--label",
            "tier=web",
            "--label",
            "zone=b",
            "-e",
            "REGION=north",
            "-e",
            "REGION_CODE=n1",
            "--log-driver",
            "fluentd",
            "--log-opt",
            &address,
            "--log-opt",
            "labels=tier",
            "--log-opt",
            "labels-regex=^zo",
            "--log-opt",
            "env=REGION",
            "--log-opt",
            "env-regex=^REGION_C",
            "--log-opt",
            &format!("tag={engine}.{{{{.Name}}}}"),
            "busybox",
            "sh",
            "-c",
            SCRIPT,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let berth = |a: &[&str]| b.docker(a);
    let oracle = |a: &[&str]| dockerd.docker(a);
    let mut seen = Vec::new();
    for (engine, docker) in [
        ("berth", &berth as &dyn Fn(&[&str]) -> Run),
        ("dockerd", &oracle),
    ] {
        let a = args(engine);
        let run = docker(&a.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        assert!(run.stdout.starts_with("hello\n\nxxx"), "{engine}");
        let records = collector.wait_for(&format!("{engine}.fwd"), 6);
        seen.push(comparable(&records, &id_of(docker, "fwd")));
    }
    assert_eq!(seen[0], seen[1], "Berth's records, then dockerd's");
    // What the records say, beyond being alike.
    let bodies: Vec<(&str, &str, &str)> = seen[0]
        .iter()
        .map(|r| {
            (
                r.fields["source"].as_str(),
                r.fields.get("partial_ordinal").map_or("", String::as_str),
                r.fields.get("partial_last").map_or("", String::as_str),
            )
        })
        .collect();
    assert_eq!(bodies.len(), 6, "{:?}", seen[0]);
    assert!(bodies.contains(&("stdout", "1", "false")), "{bodies:?}");
    assert!(bodies.contains(&("stdout", "2", "true")), "{bodies:?}");
    assert!(seen[0].iter().all(|r| r.fields["container_name"] == "/fwd"
        && r.fields["tier"] == "web"
        && r.fields["zone"] == "b"
        && r.fields["REGION"] == "north"
        && r.fields["REGION_CODE"] == "n1"));
    let logs = b.docker(&["logs", "fwd"]).ok();
    assert!(logs.stdout.starts_with("hello\n\nxxx") && logs.stdout.ends_with("x\npart"));
    assert_eq!(logs.stderr, "oops\n");

    // fluentd-sub-second-precision: times with nanoseconds (dockerd's
    // default is whole seconds, as the records above have).
    assert!(collector
        .records("berth.fwd")
        .iter()
        .all(|r| r.nanos % 1_000_000_000 == 0));
    b.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &address,
        "--log-opt",
        "tag=precise",
        "--log-opt",
        "fluentd-sub-second-precision=true",
        "busybox",
        "sh",
        "-c",
        "echo 1; echo 2; echo 3; echo 4",
    ])
    .ok();
    let precise = collector.wait_for("precise", 4);
    assert!(
        precise.iter().any(|r| r.nanos % 1_000_000_000 != 0),
        "{precise:?}"
    );

    // fluentd-request-ack: each record waits for the receiver's
    // acknowledgement before the next goes; all arrive, once each.
    b.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &address,
        "--log-opt",
        "tag=acked",
        "--log-opt",
        "fluentd-request-ack=true",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo $i; done",
    ])
    .ok();
    let mut acked: Vec<String> = collector
        .wait_for("acked", 5)
        .into_iter()
        .map(|r| r.body)
        .collect();
    acked.sort();
    assert_eq!(acked, ["1", "2", "3", "4", "5"]);

    // Bad options: refused at create, in dockerd's words.
    for opt in [
        "fluentd-retry-wait=soon",
        "fluentd-async=maybe",
        "fluentd-bogus=1",
        "fluentd-address=tcp://127.0.0.1:x",
    ] {
        let a = [
            "create",
            "--log-driver",
            "fluentd",
            "--log-opt",
            opt,
            "busybox",
            "true",
        ];
        let (ours, theirs) = (b.docker(&a), dockerd.docker(&a));
        assert_ne!(ours.code, 0, "{opt}");
        assert_eq!(
            ours.stderr, theirs.stderr,
            "{opt}: Berth's error, then dockerd's"
        );
    }
    dockerd.finish();
    b.finish();
}

/// No receiver yet: a plain start fails as on dockerd; with fluentd-async
/// the container starts, and its lines reach the receiver once it is up,
/// also while berthd is down (the shim sends them).
#[test]
fn fluentd_async_waits_for_the_receiver_and_lines_flow_without_berthd() {
    let port = quiet_port();
    let address = format!("fluentd-address=tcp://127.0.0.1:{port}");
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let mut b = Berth::start();
    dockerd.load_busybox();
    b.load_busybox();
    let refused = [
        "run",
        "--rm",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &address,
        "busybox",
        "true",
    ];
    let (ours, theirs) = (b.docker(&refused), dockerd.docker(&refused));
    assert_ne!(ours.code, 0);
    assert_eq!(
        ours.stderr.lines().next(),
        theirs.stderr.lines().next(),
        "Berth's error, then dockerd's"
    );
    assert!(ours.stderr.contains(&format!(
        "failed to initialize logging driver: dial tcp 127.0.0.1:{port}: connect: connection refused"
    )));
    dockerd.finish();

    let gate = std::env::temp_dir().join(format!("berth-fluentd-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&gate);
    std::fs::create_dir_all(&gate).unwrap();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "patient",
        "-v",
        &format!("{}:/gate", gate.display()),
        "--log-driver",
        "fluentd",
        "--log-opt",
        &address,
        "--log-opt",
        "fluentd-async=true",
        "--log-opt",
        "fluentd-retry-wait=100ms",
        "--log-opt",
        "tag=patient",
        "busybox",
        "sh",
        "-c",
        "echo early; while [ ! -e /gate/go ]; do sleep 0.05; done; echo late",
    ])
    .ok();
    let collector = Collector::start(port);
    let got = collector.wait_for("patient", 1);
    assert_eq!(got[0].body, "early");

    b.kill_berthd();
    std::fs::write(gate.join("go"), "").unwrap();
    let got = collector.wait_for("patient", 2);
    assert_eq!(got[1].body, "late");
    b.spawn_berthd();
    b.docker(&["wait", "patient"]).ok();
    assert_eq!(b.docker(&["logs", "patient"]).ok().stdout, "early\nlate\n");
    std::fs::remove_dir_all(&gate).unwrap();
    b.finish();
}

/// graygelf's server on a UDP port, its messages as JSON lines.
struct GelfServer {
    port: u16,
    child: Child,
    messages: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl GelfServer {
    fn start() -> GelfServer {
        let modules = tools().join("node/node_modules");
        assert!(
            modules.join("graygelf").exists(),
            "graygelf is missing: bash contrib/setup.sh --deps installs it"
        );
        let port = quiet_port();
        let mut child = Command::new("node")
            .arg(workspace_root().join("compat-tests/receivers/gelf-udp.js"))
            .arg(port.to_string())
            .env("NODE_PATH", modules)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node (bash contrib/setup.sh --deps installs it)");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        err.read_line(&mut first).unwrap();
        assert_eq!(first, "listening\n", "gelf-udp.js did not start");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        GelfServer {
            port,
            child,
            messages,
        }
    }

    fn wait_for(&self, tag: &str, count: usize) -> Vec<serde_json::Value> {
        within(&format!("{count} GELF messages tagged {tag}"), || {
            let got: Vec<serde_json::Value> = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m["_tag"] == tag)
                .cloned()
                .collect();
            (got.len() >= count).then_some(got)
        })
    }
}

impl Drop for GelfServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a GELF message says that two engines share: the time, the
/// container's id and creation time go (checked against the container
/// first), the tag's engine name is made alike.
fn gelf_comparable(
    messages: &[serde_json::Value],
    docker: &dyn Fn(&[&str]) -> Run,
    name: &str,
) -> Vec<String> {
    let id = id_of(docker, name);
    let created = docker(&["inspect", "-f", "{{.Created}}", name])
        .ok()
        .out()
        .to_string();
    let mut out: Vec<String> = messages
        .iter()
        .map(|m| {
            let mut m = m.as_object().unwrap().clone();
            m.remove("timestamp").expect("a timestamp");
            assert_eq!(m.remove("_container_id").unwrap(), id.as_str());
            let made = m.remove("_created").unwrap();
            // Go trims a time's trailing zeros: compare without them.
            assert_eq!(trimmed(made.as_str().unwrap()), trimmed(&created));
            m.remove("_tag");
            serde_json::Value::Object(m).to_string()
        })
        .collect();
    out.sort();
    out
}

/// An RFC 3339 time (UTC, `Z`) without trailing zeros in its fraction.
fn trimmed(time: &str) -> String {
    match time.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => format!("{whole}Z"),
            f => format!("{whole}.{f}Z"),
        },
        None => time.to_string(),
    }
}

/// A line of 9,000 letters that do not compress much (busybox awk's
/// generator, seeded, gives both engines the same): over UDP it goes in
/// GELF chunks whichever the compression.
const GELF_SCRIPT: &str = "echo hello; echo; echo 'oops <&>' >&2; \
    awk 'BEGIN { srand(7); for (i = 0; i < 9000; i++) printf \"%c\", 97 + int(rand() * 26) }'; \
    echo; printf part";

/// The same container on Berth and on dockerd, for each compression, to
/// one GELF server: the same messages (empty lines left out, stderr at
/// level 3, the long line whole after its chunks).
#[test]
fn gelf_messages_read_as_dockerds() {
    let server = GelfServer::start();
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b = Berth::start();
    dockerd.load_busybox();
    b.load_busybox();
    let address = format!("gelf-address=udp://127.0.0.1:{}", server.port);
    let berth = |a: &[&str]| b.docker(a);
    let oracle = |a: &[&str]| dockerd.docker(a);
    for compression in ["", "zlib", "none"] {
        let name = format!(
            "gelf-{}",
            if compression.is_empty() {
                "gzip"
            } else {
                compression
            }
        );
        let mut seen = Vec::new();
        for (engine, docker) in [
            ("berth", &berth as &dyn Fn(&[&str]) -> Run),
            ("dockerd", &oracle),
        ] {
            let tag = format!("tag={engine}-{name}");
            let compress = format!("gelf-compression-type={compression}");
            let mut a = vec![
                "run",
                "--name",
                &name,
                "--label",
                "tier=web",
                "--log-driver",
                "gelf",
                "--log-opt",
                &address,
                "--log-opt",
                &tag,
                "--log-opt",
                "labels=tier",
            ];
            if !compression.is_empty() {
                a.extend(["--log-opt", &compress]);
            }
            a.extend(["busybox", "sh", "-c", GELF_SCRIPT]);
            docker(&a).ok();
            let messages = server.wait_for(&format!("{engine}-{name}"), 4);
            assert_eq!(messages.len(), 4, "{engine}: {messages:?}");
            seen.push(gelf_comparable(&messages, docker, &name));
        }
        assert_eq!(seen[0], seen[1], "{name}: Berth's messages, then dockerd's");
        let text = seen[0].join("\n");
        assert!(text.contains(r#""short_message":"oops <&>""#), "{text}");
        assert!(text.contains(r#""level":3"#) && text.contains(r#""_tier":"web""#));
        assert!(
            seen[0].iter().any(|m| m.len() > 9000),
            "{name}: the long line"
        );
        let logs = b.docker(&["logs", &name]).ok();
        assert!(logs.stdout.starts_with("hello\n\n") && logs.stdout.ends_with("\npart"));
    }
    dockerd.finish();
    b.finish();
}

/// GELF over TCP, NUL after each message and no compression, to a
/// listener that keeps the bytes: Berth's messages as dockerd's, field
/// order included; an unreachable endpoint fails the start in dockerd's
/// words; bad options are refused at create as by dockerd.
#[test]
fn gelf_over_tcp_reads_as_dockerds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    let messages = |tag: &str, count: usize| -> Vec<String> {
        within(&format!("{count} TCP GELF messages tagged {tag}"), || {
            let all = received.lock().unwrap().clone();
            let got: Vec<String> = all
                .split(|b| *b == 0)
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .filter(|m| m.contains(&format!(r#""_tag":"{tag}""#)))
                .collect();
            (got.len() >= count).then_some(got)
        })
    };
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b = Berth::start();
    dockerd.load_busybox();
    b.load_busybox();
    let address = format!("gelf-address=tcp://127.0.0.1:{port}");
    let berth = |a: &[&str]| b.docker(a);
    let oracle = |a: &[&str]| dockerd.docker(a);
    let mut seen = Vec::new();
    for (engine, docker) in [
        ("berth", &berth as &dyn Fn(&[&str]) -> Run),
        ("dockerd", &oracle),
    ] {
        let tag = format!("tag={engine}-tcp");
        docker(&[
            "run",
            "--name",
            "gelf-tcp",
            "--log-driver",
            "gelf",
            "--log-opt",
            &address,
            "--log-opt",
            &tag,
            "busybox",
            "sh",
            "-c",
            GELF_SCRIPT,
        ])
        .ok();
        let raw = messages(&format!("{engine}-tcp"), 4);
        // Field order as dockerd writes it: the GELF fields, then the
        // additional ones sorted.
        for m in &raw {
            assert!(m.starts_with(r#"{"version":"1.1","host":"#), "{m}");
            assert!(m.contains(r#","level":"#) && m.contains(r#","_command":"sh -c echo hello;"#));
            assert!(m.find(r#""level""#) < m.find(r#""_command""#), "{m}");
        }
        let parsed: Vec<serde_json::Value> = raw
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect();
        seen.push(gelf_comparable(&parsed, docker, "gelf-tcp"));
    }
    assert_eq!(seen[0], seen[1], "Berth's messages, then dockerd's");
    // Go's encoder escapes <, > and &; both engines' bytes show it.
    assert!(messages("berth-tcp", 4)
        .iter()
        .any(|m| m.contains(r#""short_message":"oops \u003c\u0026\u003e""#)));

    let closed = quiet_port();
    let unreachable = format!("gelf-address=tcp://127.0.0.1:{closed}");
    for args in [
        vec![
            "run",
            "--rm",
            "--log-driver",
            "gelf",
            "--log-opt",
            &unreachable,
            "busybox",
            "true",
        ],
        vec!["create", "--log-driver", "gelf", "busybox", "true"],
        vec![
            "create",
            "--log-driver",
            "gelf",
            "--log-opt",
            &address,
            "--log-opt",
            "gelf-compression-type=gzip",
            "busybox",
            "true",
        ],
        vec![
            "create",
            "--log-driver",
            "gelf",
            "--log-opt",
            "gelf-address=udp://127.0.0.1:9",
            "--log-opt",
            "gelf-compression-level=12",
            "busybox",
            "true",
        ],
    ] {
        let (ours, theirs) = (b.docker(&args), dockerd.docker(&args));
        assert_ne!(ours.code, 0, "{args:?}");
        assert_eq!(
            ours.stderr.lines().next(),
            theirs.stderr.lines().next(),
            "{args:?}: Berth's error, then dockerd's"
        );
    }
    dockerd.finish();
    b.finish();
}
