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
