//! Who can reach the API: the unix socket's owner and mode, and TCP only
//! with mutual TLS (client certificates signed by the given CA), or plain
//! with the explicit `--tls=false`. Certificates are made with openssl.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use berth_compat_tests::{bin_dir, make_certs, Berth};

#[test]
fn the_socket_is_0660_root_and_the_docker_group() {
    let b = Berth::start();
    let md = std::fs::metadata(&b.socket).unwrap();
    assert_eq!(md.mode() & 0o777, 0o660);
    assert_eq!(md.uid(), 0);
    let docker_gid = gid_of("docker").unwrap_or(0);
    assert_eq!(md.gid(), docker_gid);
    drop(b);

    let b = Berth::start_with(&["--group", "nogroup"]);
    assert_eq!(
        Some(std::fs::metadata(&b.socket).unwrap().gid()),
        gid_of("nogroup")
    );
}

fn gid_of(group: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == group)
        .and_then(|f| f[2].parse().ok())
}

/// The port of berthd's TCP listener, from its log line.
fn tcp_port(b: &Berth) -> String {
    let log = b.log();
    let at = log
        .find("address=tcp://127.0.0.1:")
        .unwrap_or_else(|| panic!("no tcp listener in the log:\n{log}"));
    log[at + "address=tcp://127.0.0.1:".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect()
}

/// `docker` against a TCP host, with the given TLS flags.
fn docker_tcp(b: &Berth, host: &str, tls: &[String], args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env("DOCKER_CONFIG", b.root.join("docker-config"))
        .arg("-H")
        .arg(host)
        .args(tls)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn tcp_needs_a_client_certificate_signed_by_the_ca() {
    let dir = std::env::temp_dir().join(format!("berth-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir, "good");
    make_certs(&dir, "other");
    let p = |f: &str| dir.join(f).display().to_string();
    let b = Berth::start_with(&[
        "-H",
        "tcp://127.0.0.1:0",
        "--tlsverify",
        "--tlscacert",
        &p("good-ca.pem"),
        "--tlscert",
        &p("good-server-cert.pem"),
        "--tlskey",
        &p("good-server-key.pem"),
    ]);
    b.load_busybox();
    let host = format!("tcp://127.0.0.1:{}", tcp_port(&b));
    let client = |prefix: &str| {
        vec![
            "--tlsverify".to_string(),
            "--tlscacert".into(),
            p("good-ca.pem"),
            "--tlscert".into(),
            p(&format!("{prefix}-client-cert.pem")),
            "--tlskey".into(),
            p(&format!("{prefix}-client-key.pem")),
        ]
    };

    // With a good certificate: everything, hijacked streams included.
    let run = docker_tcp(
        &b,
        &host,
        &client("good"),
        &["run", "--rm", "busybox", "echo", "over tls"],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "over tls\n");

    // Without one, with one from another CA, or without TLS: nothing.
    let no_cert = vec!["--tls".to_string(), "--tlscacert".into(), p("good-ca.pem")];
    for (what, tls) in [
        ("no client certificate", no_cert),
        ("a certificate from another CA", client("other")),
        ("plain http", vec![]),
    ] {
        let out = docker_tcp(
            &b,
            &host,
            &tls,
            &["version", "--format", "{{.Server.Version}}"],
        );
        assert!(!out.status.success(), "{what} got in: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "{what}: {out:?}"
        );
    }
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plain_tcp_only_when_asked_for_and_with_a_warning() {
    // Refused without TLS flags, and with --tls alone (no client check).
    for extra in [&[][..], &["--tls"][..]] {
        let root = std::env::temp_dir().join(format!(
            "berth-plain-{}-{}",
            std::process::id(),
            extra.len()
        ));
        let out = Command::new(bin_dir().join("berthd"))
            .arg("-H")
            .arg(format!("unix://{}/docker.sock", root.display()))
            .arg("-H")
            .arg("tcp://127.0.0.1:0")
            .args(extra)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--tlsverify"), "{err}");
        assert!(
            !root.join("docker.sock").exists(),
            "a refused start must not serve"
        );
        // It stopped before starting a core, so nothing else runs there.
        let _ = std::fs::remove_dir_all(&root);
    }

    let b = Berth::start_with(&["-H", "tcp://127.0.0.1:0", "--tls=false"]);
    assert!(b.log().contains("plain TCP"), "{}", b.log());
    let host = format!("tcp://127.0.0.1:{}", tcp_port(&b));
    let out = docker_tcp(&b, &host, &[], &["version", "--format", "{{.Server.Os}}"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "linux\n");
}
