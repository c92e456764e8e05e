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
