//! berthd configured as dockerd is: `--config-file` with dockerd's
//! daemon.json keys, checked with `--validate`, refused in dockerd's
//! words when a key is unknown or also given as a flag.

use std::path::PathBuf;
use std::process::Command;

use berth_compat_tests::{bin_dir, Berth};

/// A configuration file in a directory of the test's own (`test`).
fn config_file(test: &str, name: &str, json: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-config-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path
}

/// `berthd --validate` with these flags: exit code, stdout, stderr.
fn validate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin_dir().join("berthd"))
        .arg("--validate")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_reads_the_file_as_dockerd_does() {
    let good = config_file(
        "validate",
        "good.json",
        r#"{"log-driver": "local", "log-opts": {"max-size": "5m"}, "live-restore": true,
            "default-address-pools": [{"base": "10.240.0.0/16", "size": 24}]}"#,
    );
    let (code, out, _) = validate(&["--config-file", good.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "configuration OK\n"));

    let unknown = config_file("validate", "unknown.json", r#"{"frobnicate": true}"#);
    let (code, _, err) = validate(&["--config-file", unknown.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "berthd: unable to configure the daemon with file {}: the following directives don't match any configuration option: frobnicate\n",
            unknown.display()
        )
    );

    let (code, _, err) = validate(&[
        "--config-file",
        good.to_str().unwrap(),
        "--log-driver",
        "json-file",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the following directives are specified both as a flag and in the configuration file: log-driver: (from flag: json-file, from file: local)"),
        "{err}"
    );

    // A named file must exist; the default one need not.
    let (code, _, err) = validate(&["--config-file", "/nonexistent/daemon.json"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("open /nonexistent/daemon.json: no such file or directory"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(good.parent().unwrap());
}

#[test]
fn a_running_berthd_follows_its_configuration_file() {
    let file = config_file(
        "running",
        "running.json",
        r#"{"log-driver": "local", "log-opts": {"max-size": "5m"}, "max-concurrent-downloads": 7}"#,
    );
    let b = Berth::start_with(&["--config-file", file.to_str().unwrap()]);
    b.load_busybox();
    let info = b.docker(&["info", "--format", "{{.LoggingDriver}}"]).ok();
    assert_eq!(info.out(), "local");
    b.docker(&["run", "--name", "cfg", "busybox", "true"]).ok();
    let log_config = b
        .docker(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "cfg"])
        .ok();
    assert_eq!(
        log_config.out(),
        r#"{"Type":"local","Config":{"max-size":"5m"}}"#
    );
    b.finish();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[test]
fn sighup_reloads_what_may_change_and_says_so() {
    use std::io::BufRead;
    let mirror = berth_compat_tests::registry::Registry::start();
    let file = config_file("reload", "daemon.json", "{}");
    let b = Berth::start_with(&["--config-file", file.to_str().unwrap()]);
    b.load_busybox();
    // The mirror holds an image of Docker Hub's that this engine lacks.
    let pushed = format!("{}/library/busybox:reloaded", mirror.addr);
    b.docker(&["tag", "busybox", &pushed]).ok();
    b.docker(&["push", &pushed]).ok();
    b.docker(&["rmi", &pushed]).ok();

    let url = format!("http://{}", mirror.addr);
    std::fs::write(
        &file,
        format!(r#"{{"registry-mirrors": ["{url}"], "debug": true}}"#),
    )
    .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &b.berthd_pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Events since before the signal: the reload's is replayed if it came
    // already, or arrives live; either way it is the first line.
    let mut events = b
        .docker_cmd(&[
            "events",
            "--since",
            &format!("{}.{:09}", before.as_secs(), before.subsec_nanos()),
            "--filter",
            "type=daemon",
            "--format",
            "{{.Action}} {{index .Actor.Attributes \"registry-mirrors\"}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    // A bound on a hang (no reload ever announced), not a synchronisation.
    let first = rx.recv_timeout(std::time::Duration::from_secs(60));
    let _ = events.kill();
    let _ = events.wait();
    assert_eq!(first.ok(), Some(format!("reload [{url}/]\n")));
    let mirrors = b
        .docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"])
        .ok();
    assert_eq!(mirrors.out(), format!("[\"{url}/\"]"));
    b.docker(&["pull", "busybox:reloaded"]).ok();
    b.finish();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
