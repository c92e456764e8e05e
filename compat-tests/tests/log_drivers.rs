//! Log drivers that ship lines elsewhere, tested against a real receiver:
//! Debian's rsyslogd on its own ports and sockets, writing each message it
//! receives as it came (`%rawmsg%`). dockerd 20.10 sends to the same
//! rsyslogd, and the messages of both must read alike.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_compat_tests::dockerd::Dockerd;
use berth_compat_tests::{free_port, make_certs, Berth};

/// An rsyslogd listening on 127.0.0.1 (udp and tcp), on a unix stream
/// socket and on a unix datagram socket, writing every raw message to one
/// file. Dropped: stopped, its directory removed.
struct Rsyslog {
    dir: PathBuf,
    udp: u16,
    tcp: u16,
    child: Child,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        Self::start_with(false)
    }

    /// With `tls`, the tcp input speaks TLS (rsyslog's openssl driver)
    /// with a server certificate for 127.0.0.1 from the CA `tls-ca.pem`
    /// in [`Rsyslog::dir`] (made by `make_certs(dir, "tls")`), and there is
    /// no other input.
    fn start_with(tls: bool) -> Rsyslog {
        let (udp, tcp) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("berth-rsyslog-{}-{udp}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let config = if tls {
            make_certs(&dir, "tls");
            format!(
                r#"global(workDirectory="{d}"
  DefaultNetstreamDriver="ossl"
  DefaultNetstreamDriverCAFile="{d}/tls-ca.pem"
  DefaultNetstreamDriverCertFile="{d}/tls-server-cert.pem"
  DefaultNetstreamDriverKeyFile="{d}/tls-server-key.pem")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="{d}/received.log" template="raw")
"#
            )
        } else {
            format!(
                r#"global(workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
module(load="imptcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imptcp" path="{d}/stream.sock")
input(type="imuxsock" Socket="{d}/gram.sock")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="{d}/received.log" template="raw")
"#
            )
        };
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
        let log = std::fs::File::create(dir.join("rsyslogd.out")).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rsyslogd (install it with contrib/setup.sh --deps)");
        let r = Rsyslog {
            dir,
            udp,
            tcp,
            child,
        };
        // Ready when every input listens: the tcp port answers and both
        // sockets exist.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err()
            || (!tls && !r.dir.join("stream.sock").exists())
            || (!tls && !r.dir.join("gram.sock").exists())
        {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start: {}",
                r.out()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn out(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
    }

    fn address(&self, transport: &str) -> String {
        match transport {
            "udp" => format!("udp://127.0.0.1:{}", self.udp),
            "tcp" => format!("tcp://127.0.0.1:{}", self.tcp),
            "tcp+tls" => format!("tcp+tls://127.0.0.1:{}", self.tcp),
            "unix" => format!("unix://{}/stream.sock", self.dir.display()),
            _ => format!("unixgram://{}/gram.sock", self.dir.display()),
        }
    }

    /// The messages received so far that carry `tag`.
    fn messages(&self, tag: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("received.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!(" {tag}")))
            .map(str::to_string)
            .collect()
    }

    /// [`Rsyslog::wait_for`]'s messages made comparable across senders
    /// ([`normalized`]), sorted (stdout and stderr may interleave).
    fn normalized(&self, tag: &str, count: usize) -> Vec<String> {
        let mut got: Vec<String> = self
            .wait_for(tag, count)
            .iter()
            .map(|m| normalized(m, tag))
            .collect();
        got.sort();
        got
    }

    /// Waits until `count` messages carry `tag`, and returns them.
    fn wait_for(&self, tag: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.messages(tag);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd received {got:?} for {tag}, wanted {count} messages"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A message with what differs between two senders on one host made
/// alike: the time (each form's own), the sending process's id, and the
/// tag's engine prefix.
fn normalized(msg: &str, tag: &str) -> String {
    let (pri, rest) = msg.split_once('>').unwrap_or(("", msg));
    let rest = if let Some(after) = rest.strip_prefix("1 ") {
        // RFC 5424: VERSION TIMESTAMP HOST APP PID MSGID - MSG
        let mut fields: Vec<&str> = after.splitn(6, ' ').collect();
        fields[0] = "TIME";
        fields[3] = "PID";
        format!("1 {}", fields.join(" "))
    } else {
        // BSD forms: "Mmm dd hh:mm:ss " (15 characters), then TAG[PID]: MSG.
        let (_, after_time) = rest.split_at(15.min(rest.len()));
        let (head, msg) = after_time.split_once("]: ").unwrap_or((after_time, ""));
        let head = head.rsplit_once('[').map_or(head, |(h, _)| h);
        format!("TIME{head}[PID]: {msg}")
    };
    format!("{pri}>{}", rest.replace(tag, "TAG"))
}

/// Each transport and format: the same container on Berth and on dockerd,
/// the messages rsyslogd received from each, alike but for time and pid.
#[test]
fn syslog_messages_read_as_dockerds() {
    let rsyslog = Rsyslog::start();
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b = Berth::start();
    dockerd.load_busybox();
    b.load_busybox();
    let cases = [
        ("udp", ""),
        ("udp", "rfc3164"),
        ("udp", "rfc5424"),
        ("udp", "rfc5424micro"),
        ("tcp", ""),
        ("tcp", "rfc5424"),
        ("unix", "rfc3164"),
        ("unixgram", ""),
    ];
    for (i, (transport, format)) in cases.into_iter().enumerate() {
        let mut per_engine = Vec::new();
        for engine in ["berth", "docker"] {
            // No name is the start of another: rsyslogd's file is searched by tag.
            let name = format!("{engine}-{i}-{transport}");
            let address = rsyslog.address(transport);
            let mut args = vec![
                "run".to_string(),
                "--rm".into(),
                "--name".into(),
                name.clone(),
                "--log-driver".into(),
                "syslog".into(),
                "--log-opt".into(),
                format!("syslog-address={address}"),
                "--log-opt".into(),
                "tag={{.Name}}".into(),
                "--log-opt".into(),
                "syslog-facility=local4".into(),
            ];
            if !format.is_empty() {
                args.extend(["--log-opt".into(), format!("syslog-format={format}")]);
            }
            args.extend([
                "busybox".into(),
                "sh".into(),
                "-c".into(),
                "echo out; echo; echo 'tab\there \"quoted\"' >&2; printf partial".into(),
            ]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = if engine == "berth" {
                b.docker(&args)
            } else {
                dockerd.docker(&args)
            };
            assert_eq!(run.ok().stdout, "out\n\npartial", "{name}");
            // The empty line is not sent: three messages.
            per_engine.push(rsyslog.normalized(&name, 3));
        }
        assert_eq!(
            per_engine[0], per_engine[1],
            "{transport} {format:?}: Berth's messages, then dockerd's"
        );
    }

    // Options are refused in dockerd's words, at create or at start.
    let closed = free_port();
    let refused_address = format!("syslog-address=tcp://127.0.0.1:{closed}");
    for opt in [
        "syslog-format=bogus",
        "syslog-facility=bogus",
        "bogus=1",
        "max-size=1m",
        "syslog-address=foo://x",
        "syslog-address=unix:///nonexistent/berth.sock",
        "cache-disabled=maybe",
        "tag={{.Bogus}}",
        refused_address.as_str(),
    ] {
        let args = [
            "run",
            "--rm",
            "--log-driver",
            "syslog",
            "--log-opt",
            opt,
            "busybox",
            "true",
        ];
        let ours = b.docker(&args);
        let theirs = dockerd.docker(&args);
        assert_ne!(ours.code, 0, "{opt}");
        assert_eq!(
            ours.stderr.lines().next(),
            theirs.stderr.lines().next(),
            "{opt}: Berth's error, then dockerd's"
        );
    }
    dockerd.finish();
}

/// Syslog over tcp+tls to rsyslogd's TLS input: with the CA, the RFC 5424
/// form (octet-counted, as dockerd frames it) and the default form read as
/// dockerd's do; with `syslog-tls-skip-verify` no CA is needed; with
/// another CA the start fails.
#[test]
fn syslog_over_tls_reads_as_dockerds() {
    let rsyslog = Rsyslog::start_with(true);
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b = Berth::start();
    dockerd.load_busybox();
    b.load_busybox();
    let address = format!("syslog-address={}", rsyslog.address("tcp+tls"));
    let ca = format!(
        "syslog-tls-ca-cert={}",
        rsyslog.dir.join("tls-ca.pem").display()
    );
    for (i, format) in ["rfc5424", "rfc5424micro", ""].into_iter().enumerate() {
        let mut per_engine = Vec::new();
        for engine in ["berth", "docker"] {
            let name = format!("{engine}-tls{i}");
            let form = format!("syslog-format={format}");
            let mut args = vec![
                "run",
                "--rm",
                "--name",
                &name,
                "--log-driver",
                "syslog",
                "--log-opt",
                &address,
                "--log-opt",
                &ca,
                "--log-opt",
                "tag={{.Name}}",
            ];
            if !format.is_empty() {
                args.extend(["--log-opt", &form]);
            }
            args.extend(["busybox", "sh", "-c", "echo one; echo two >&2"]);
            let run = if engine == "berth" {
                b.docker(&args)
            } else {
                dockerd.docker(&args)
            };
            run.ok();
            per_engine.push(rsyslog.normalized(&name, 2));
        }
        assert_eq!(
            per_engine[0], per_engine[1],
            "{format:?}: Berth's messages, then dockerd's"
        );
    }
    dockerd.finish();

    // No CA needed when the certificate is not checked.
    b.docker(&[
        "run",
        "--rm",
        "--name",
        "unchecked",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "--log-opt",
        "syslog-tls-skip-verify=true",
        "--log-opt",
        "tag={{.Name}}",
        "busybox",
        "echo",
        "taken",
    ])
    .ok();
    assert!(rsyslog.wait_for("unchecked", 1)[0].ends_with("]: taken"));

    // A receiver whose certificate the given CA did not sign.
    make_certs(&rsyslog.dir, "other");
    let other = format!(
        "syslog-tls-ca-cert={}",
        rsyslog.dir.join("other-ca.pem").display()
    );
    let run = b.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "--log-opt",
        &other,
        "busybox",
        "true",
    ]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("Error response from daemon: failed to initialize logging driver: "),
        "{}",
        run.stderr
    );
}

/// The shim sends the lines: they keep reaching the receiver while berthd
/// is down, and `docker logs` reads them from the dual-logging cache.
#[test]
fn syslog_lines_flow_while_berthd_is_down_and_docker_logs_reads_the_cache() {
    let rsyslog = Rsyslog::start();
    let mut b = Berth::start();
    b.load_busybox();
    let gate = std::env::temp_dir().join(format!("berth-syslog-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&gate);
    std::fs::create_dir_all(&gate).unwrap();
    let address = rsyslog.address("udp");
    b.docker(&[
        "run",
        "-d",
        "--name",
        "shipper",
        "-v",
        &format!("{}:/gate", gate.display()),
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address={address}"),
        "--log-opt",
        "tag=shipper-{{.ImageName}}",
        "busybox",
        "sh",
        "-c",
        "echo before; while [ ! -e /gate/go ]; do sleep 0.05; done; echo after",
    ])
    .ok();
    rsyslog.wait_for("shipper-busybox", 1);
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.LogPath}}", "shipper"])
            .ok()
            .out(),
        ""
    );

    b.kill_berthd();
    std::fs::write(gate.join("go"), "").unwrap();
    let got = rsyslog.wait_for("shipper-busybox", 2);
    assert!(got[1].ends_with("]: after"), "{got:?}");

    b.spawn_berthd();
    b.docker(&["wait", "shipper"]).ok();
    let logs = b.docker(&["logs", "shipper"]).ok();
    assert_eq!(logs.stdout, "before\nafter\n");

    // Without the cache there is nothing to read, as on dockerd.
    b.docker(&[
        "run",
        "--name",
        "uncached",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address={address}"),
        "--log-opt",
        "cache-disabled=true",
        "busybox",
        "echo",
        "hi",
    ])
    .ok();
    let logs = b.docker(&["logs", "uncached"]);
    assert_ne!(logs.code, 0);
    assert!(
        logs.stderr
            .contains("configured logging driver does not support reading"),
        "{}",
        logs.stderr
    );
    std::fs::remove_dir_all(&gate).unwrap();
}

/// A receiver that stops reading (rsyslogd stopped with SIGSTOP): with
/// `mode=non-blocking` the container runs to its end and what overflows
/// the buffer is lost; in the default blocking mode its output waits for
/// the receiver and nothing is lost once it reads again.
#[test]
fn syslog_modes_when_the_receiver_stops_reading() {
    let rsyslog = Rsyslog::start();
    let b = Berth::start();
    b.load_busybox();
    let address = rsyslog.address("tcp");
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &rsyslog.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} rsyslogd");
    };
    // 40,000 lines of 250 bytes: 10 MB, more than the sockets between
    // them buffer.
    let script = "yes $(printf '%0249d' 0) | head -n 40000";
    let run = |name: &str, extra: &[&str]| {
        let tag = format!("tag={name}");
        let opt = format!("syslog-address={address}");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--log-driver",
            "syslog",
            "--log-opt",
            &opt,
            "--log-opt",
            &tag,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        b.docker(&args).ok();
    };
    signal("-STOP");
    run(
        "lossy",
        &[
            "--log-opt",
            "mode=non-blocking",
            "--log-opt",
            "max-buffer-size=64k",
        ],
    );
    run("patient", &[]);
    // The non-blocking one ends while the receiver still reads nothing.
    let lossy_ended = wait_within(&b, "lossy", 60);
    // A blocking one killed while the receiver is stuck: its exit is
    // reported all the same (dockerd reports exits whatever its log copier
    // waits for), after a bounded wait for the receiver.
    let opt = format!("syslog-address={address}");
    b.docker(&[
        "run",
        "-d",
        "--name",
        "stuck",
        "--log-driver",
        "syslog",
        "--log-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "yes",
    ])
    .ok();
    b.docker(&["kill", "stuck"]).ok();
    let stuck_ended = wait_within(&b, "stuck", 60);
    // Let the receiver read again before judging, so that nothing is left
    // hanging whatever the outcome.
    signal("-CONT");
    assert_eq!(
        lossy_ended.as_deref(),
        Some("0"),
        "the non-blocking container did not end"
    );
    assert_eq!(
        stuck_ended.as_deref(),
        Some("137"),
        "a killed container's exit was not reported"
    );
    b.docker(&["wait", "patient"]).ok();
    let all = rsyslog.wait_for("patient[", 40_000);
    let odd: Vec<&String> = all
        .iter()
        .filter(|m| !m.ends_with(&format!("]: {:0249}", 0)))
        .collect();
    assert_eq!(
        (all.len(), odd.len()),
        (40_000, 0),
        "{:?}",
        &odd[..odd.len().min(3)]
    );
    let lossy = rsyslog.messages("lossy[").len();
    assert!(
        lossy < 40_000,
        "{lossy} of 40000 arrived: nothing was dropped"
    );
}

/// `docker wait NAME`'s exit code, or `None` if it takes longer than
/// `secs` (the waiting client is left to end with the test).
fn wait_within(b: &Berth, name: &str, secs: u64) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut wait = b.docker_cmd(&["wait", name]);
    std::thread::spawn(move || {
        let out = wait.output().unwrap();
        let _ = tx.send(String::from_utf8_lossy(&out.stdout).trim().to_string());
    });
    rx.recv_timeout(Duration::from_secs(secs)).ok()
}

/// A systemd-journald of the test's own, in a journal namespace: its
/// socket is /run/systemd/journal.<namespace>/socket and its files are
/// /var/log/journal/<machine-id>.<namespace>, never the host journal's.
/// Dropped: stopped, both removed.
struct Journal {
    namespace: String,
    child: Child,
}

impl Journal {
    fn start() -> Journal {
        let namespace = format!("berthtest{}", std::process::id());
        let out =
            std::fs::File::create(std::env::temp_dir().join(format!("{namespace}-journald.out")))
                .unwrap();
        let child = Command::new("/lib/systemd/systemd-journald")
            .arg(&namespace)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start systemd-journald (Debian's systemd package)");
        let j = Journal { namespace, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        // Ready once it receives: a datagram to the socket is accepted.
        while std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.send_to(b"MESSAGE=ready\n", j.socket()))
            .is_err()
        {
            assert!(Instant::now() < deadline, "systemd-journald did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        j
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/socket", self.namespace))
    }

    /// The entries whose SYSLOG_IDENTIFIER is `tag`, once there are `count`.
    fn entries(&self, tag: &str, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("journalctl")
                .arg(format!("--namespace={}", self.namespace))
                .args(["-o", "json", "--no-pager"])
                .arg(format!("SYSLOG_IDENTIFIER={tag}"))
                .output()
                .unwrap();
            let got: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the journal has {} entries for {tag}, wanted {count}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{}", self.namespace));
        let suffix = format!(".{}", self.namespace);
        for entry in std::fs::read_dir("/var/log/journal")
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().ends_with(&suffix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("{}-journald.out", self.namespace)),
        );
    }
}

/// The journald driver against a real systemd-journald: dockerd's fields
/// on every entry, priorities by stream, empty lines kept, a line that
/// did not end marked partial; `docker logs` reads the cache. Errors as
/// dockerd's, which runs without a journal here.
#[test]
fn journald_entries_carry_dockerds_fields() {
    let journal = Journal::start();
    let socket = journal.socket();
    let b = Berth::start_with_env(&[("BERTH_JOURNAL_SOCKET", socket.to_str().unwrap())]);
    b.load_busybox();
    let run = b
        .docker(&[
            "run",
            "--name",
            "journaled",
            "--label",
            "com.example.tier=web",
            "-e",
            "API_TOKEN=hunter2",
            "--log-driver",
            "journald",
            "--log-opt",
            "labels=com.example.tier",
            "--log-opt",
            "env=API_TOKEN",
            "--log-opt",
            "tag={{.Name}}-{{.ImageName}}",
            "busybox",
            "sh",
            "-c",
            "echo hello; echo; echo oops >&2; printf part",
        ])
        .ok();
    assert_eq!(run.stdout, "hello\n\npart");
    let id = b
        .docker(&["inspect", "-f", "{{.Id}}", "journaled"])
        .ok()
        .out()
        .to_string();
    let entries = journal.entries("journaled-busybox", 4);
    let mut seen: Vec<(String, String, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["MESSAGE"].as_str().unwrap_or("?").to_string(),
                e["PRIORITY"].as_str().unwrap_or("?").to_string(),
                e["CONTAINER_PARTIAL_MESSAGE"] == "true",
            )
        })
        .collect();
    seen.sort();
    let want = |m: &str, p: &str, partial| (m.to_string(), p.to_string(), partial);
    assert_eq!(
        seen,
        [
            want("", "6", false),
            want("hello", "6", false),
            want("oops", "3", false),
            want("part", "6", true)
        ]
    );
    for e in &entries {
        assert_eq!(e["CONTAINER_ID"], id[..12]);
        assert_eq!(e["CONTAINER_ID_FULL"], id.as_str());
        assert_eq!(e["CONTAINER_NAME"], "journaled");
        assert_eq!(e["CONTAINER_TAG"], "journaled-busybox");
        assert_eq!(e["IMAGE_NAME"], "busybox");
        assert_eq!(e["COM_EXAMPLE_TIER"], "web");
        assert_eq!(e["API_TOKEN"], "hunter2");
        // Logged where the user asked, not shown to every user in `ps`
        // (journald records the sender's command line).
        assert!(
            !e["_CMDLINE"].as_str().unwrap_or("").contains("hunter2"),
            "{}",
            e["_CMDLINE"]
        );
    }
    let logs = b.docker(&["logs", "journaled"]).ok();
    assert_eq!(logs.stdout, "hello\n\npart");
    assert_eq!(logs.stderr, "oops\n");

    // Without a journal (a socket that is not there), in dockerd 20.10's
    // words on a host without one.
    let lonely = Berth::start_with_env(&[("BERTH_JOURNAL_SOCKET", "/nonexistent/journal/socket")]);
    lonely.load_busybox();
    let run = lonely.docker(&["run", "--rm", "--log-driver", "journald", "busybox", "true"]);
    assert_ne!(run.code, 0);
    assert_eq!(
        run.stderr.lines().next(),
        Some("docker: Error response from daemon: failed to initialize logging driver: journald is not enabled on this host")
    );
    // An option journald does not take: refused at create, as by dockerd.
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    dockerd.load_busybox();
    let args = [
        "create",
        "--log-driver",
        "journald",
        "--log-opt",
        "bogus=1",
        "busybox",
        "true",
    ];
    let ours = lonely.docker(&args);
    let theirs = dockerd.docker(&args);
    assert_ne!(ours.code, 0);
    assert_eq!(ours.stderr, theirs.stderr, "Berth's error, then dockerd's");
    dockerd.finish();
}
