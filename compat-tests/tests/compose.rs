//! docker-compose v1 (Debian's 1.29, Python) and `docker compose` v2 (the
//! official Go plugin) each run the same three-service project: a busybox
//! httpd web server with a named volume, a published port on 127.0.0.1, an
//! environment, a restart policy, a health check and an init; a client that waits
//! for it to be healthy and reaches it by service name; a sidecar. Then
//! up -d, ps, logs, exec, stop, start, down -v.

use std::path::Path;
use std::process::Command;

use berth_compat_tests::{free_port, http_get, Berth, Run};

const PROJECT: &str = r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo served-by-web > /www/index.html && echo web-started && exec httpd -f -p 80 -h /www"]
    volumes:
      - www:/www
    ports:
      - "127.0.0.1:PORT:80"
    environment:
      GREETING: hello-from-compose
    restart: unless-stopped
    init: true
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      timeout: 2s
      retries: 20
  client:
    image: busybox
    command: ["sleep", "600"]
    stop_grace_period: 1s
    depends_on:
      web:
        condition: service_healthy
  sidecar:
    image: busybox
    command: ["sleep", "600"]
    stop_grace_period: 1s
volumes:
  www: {}
"#;

fn compose(b: &Berth, dir: &Path, cmd: &[&str], args: &[&str]) -> Run {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", format!("unix://{}", b.socket.display()))
        .env("COMPOSE_PROJECT_NAME", "demo")
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_project(cmd: &[&str]) {
    let b = Berth::start();
    b.load_busybox();
    let dir = b.root.join("project");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("docker-compose.yml"),
        PROJECT.replace("PORT", &port.to_string()),
    )
    .unwrap();

    compose(&b, &dir, cmd, &["up", "-d"]).ok();
    // up -d returns once the client started, which waited for web's health.
    let ps = compose(&b, &dir, cmd, &["ps"]).ok();
    assert!(ps.stdout.contains("healthy"), "{}", ps.stdout);
    assert!(
        ps.stdout.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{}",
        ps.stdout
    );
    assert_eq!(http_get(port, "/").as_deref(), Some("served-by-web\n"));
    // The client reaches the server by its service name.
    let fetched = compose(
        &b,
        &dir,
        cmd,
        &[
            "exec",
            "-T",
            "client",
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web 80 | tail -n 1",
        ],
    )
    .ok();
    assert_eq!(fetched.stdout.trim(), "served-by-web");
    let env = compose(
        &b,
        &dir,
        cmd,
        &["exec", "-T", "web", "sh", "-c", "echo $GREETING"],
    )
    .ok();
    assert_eq!(env.stdout.trim(), "hello-from-compose");
    let logs = compose(&b, &dir, cmd, &["logs", "--no-color", "web"]).ok();
    assert!(logs.stdout.contains("web-started"), "{}", logs.stdout);
    let policy = b
        .docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}",
            "demo-web-1",
            "demo_web_1",
        ])
        .stdout;
    assert!(policy.contains("unless-stopped"), "{policy}");

    compose(&b, &dir, cmd, &["stop"]).ok();
    assert_eq!(http_get(port, "/"), None);
    compose(&b, &dir, cmd, &["start"]).ok();
    // start returns before web is healthy again; the data is still there.
    let again = compose(
        &b,
        &dir,
        cmd,
        &["exec", "-T", "web", "cat", "/www/index.html"],
    )
    .ok();
    assert_eq!(again.stdout.trim(), "served-by-web");

    compose(&b, &dir, cmd, &["down", "-v"]).ok();
    assert_eq!(b.docker(&["ps", "-aq"]).ok().out(), "");
    assert_eq!(
        b.docker(&["volume", "ls", "-q", "--filter", "name=demo"])
            .ok()
            .out(),
        ""
    );
    assert_eq!(
        b.docker(&["network", "ls", "-q", "--filter", "name=demo"])
            .ok()
            .out(),
        ""
    );
    b.finish();
}

#[test]
fn docker_compose_v1_runs_a_project() {
    run_project(&["docker-compose"]);
}

#[test]
fn docker_compose_v2_runs_a_project() {
    run_project(&["docker", "compose"]);
}

/// A project of `n` services whose processes end at once on SIGTERM; every
/// fourth publishes a port on 127.0.0.1. All share compose's network.
fn many_services(n: usize) -> String {
    let mut yaml = String::from("services:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  s{i}:\n    image: busybox\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 600 & wait\"]\n"
        ));
        if i % 4 == 0 {
            yaml.push_str("    ports: [\"127.0.0.1::80\"]\n");
        }
    }
    yaml
}

/// What a project's network leaves on the host: its bridge, the host ends
/// of its containers' interfaces, firewall rules naming its subnet, and
/// aardvark-dns's records.
fn host_traces(b: &Berth, network_id: &str, subnet: &str, veths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let bridge = format!("br-{}", &network_id[..12]);
    for link in std::iter::once(&bridge).chain(veths) {
        if Path::new("/sys/class/net").join(link).exists() {
            out.push(format!("link {link}"));
        }
    }
    let prefix = subnet.trim_end_matches(".0/24");
    for table in ["nat", "filter"] {
        let rules = Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output()
            .unwrap();
        out.extend(
            String::from_utf8_lossy(&rules.stdout)
                .lines()
                .filter(|l| l.contains(&format!("{prefix}.")))
                .map(|l| format!("iptables {table}: {l}")),
        );
    }
    let records = b.exec_root().join("networks/aardvark-dns").join(network_id);
    if records.exists() {
        out.push(format!("{}", records.display()));
    }
    out
}

#[test]
fn compose_down_killed_midway_is_finished_by_the_next_down() {
    let mut b = Berth::start();
    b.load_busybox();
    let dir = b.root.join("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), many_services(12)).unwrap();
    let v2 = ["docker", "compose"];
    compose(&b, &dir, &v2, &["up", "-d"]).ok();
    let running = b.docker(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=demo",
    ]);
    assert_eq!(running.ok().stdout.lines().count(), 12);
    // The services reach each other by name, whichever way their
    // interfaces were made.
    let ping = b
        .docker(&["exec", "demo-s1-1", "ping", "-c", "1", "-W", "2", "s0"])
        .ok();
    assert!(
        ping.stdout.contains("1 packets received"),
        "{}",
        ping.stdout
    );

    let network_id = b
        .docker(&["network", "inspect", "-f", "{{.Id}}", "demo_default"])
        .ok()
        .out()
        .to_string();
    let subnet = b
        .docker(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}}",
            "demo_default",
        ])
        .ok()
        .out()
        .to_string();
    let bridge = format!("br-{}", &network_id[..12]);
    let listed = Command::new("ip")
        .args(["-o", "link", "show", "master", &bridge])
        .output()
        .unwrap();
    // The host ends Berth named (Docker's `veth` and seven hex digits);
    // netavark's get the kernel's vethN, which another test may reuse.
    let veths: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .filter(|n| n.len() == "veth".len() + 7)
        .collect();
    assert!(
        !veths.is_empty(),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    assert!(!host_traces(&b, &network_id, &subnet, &veths).is_empty());

    // berthd dies once the first container of the project is removed,
    // while the others are being stopped and removed.
    let mut events = b
        .docker_cmd(&[
            "events",
            "--filter",
            "type=container",
            "--filter",
            "event=destroy",
            "--format",
            "{{.ID}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let down = Command::new("docker")
        .args(["compose", "down", "-t", "1"])
        .current_dir(&dir)
        .env("DOCKER_HOST", format!("unix://{}", b.socket.display()))
        .env("COMPOSE_PROJECT_NAME", "demo")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(events.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(!first.trim().is_empty());
    b.kill_berthd();
    let _ = events.wait();
    let interrupted = down.wait_with_output().unwrap();
    b.spawn_berthd();
    b.wait_for_core();
    let remaining = b.docker(&["ps", "-aq"]).ok().stdout.lines().count();
    assert!(
        remaining < 12,
        "the first down removed nothing (exit {:?})",
        interrupted.status
    );

    // The next down finishes the job: no container, no network, and
    // nothing of the network on the host.
    compose(&b, &dir, &v2, &["down", "-t", "1"]).ok();
    assert_eq!(b.docker(&["ps", "-aq"]).ok().out(), "");
    assert_eq!(
        b.docker(&["network", "ls", "-q", "--filter", "name=demo"])
            .ok()
            .out(),
        ""
    );
    let traces = host_traces(&b, &network_id, &subnet, &veths);
    assert!(
        traces.is_empty(),
        "left on the host: {traces:?}\n{}",
        b.log()
    );
    b.finish();
}
