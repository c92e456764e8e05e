//! `docker pull`, `docker push` and `docker login` against a real registry
//! (Debian's docker-registry on 127.0.0.1): Docker and OCI manifests,
//! gzip and zstd layers, indexes with platform selection, digests, shared
//! layers and pulls, corrupt blobs, basic auth, and a pull cut short.

use berth_compat_tests::images::{layer_tar, push_layered, Compression};
use berth_compat_tests::registry::Registry;
use berth_compat_tests::Berth;

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn push_then_pull_round_trip_keeps_the_digest() {
    let reg = Registry::start();
    let b = Berth::start();
    b.load_busybox();
    let name = format!("{}/team/busybox:1.0", reg.addr);
    b.docker(&["tag", "busybox", &name]).ok();
    let pushed = b.docker(&["push", &name]).ok();
    assert!(
        pushed.stdout.contains(&format!(
            "The push refers to repository [{}/team/busybox]",
            reg.addr
        )),
        "{}",
        pushed.stdout
    );
    assert_eq!(
        lines_with(&pushed.stdout, ": Pushed").len(),
        1,
        "{}",
        pushed.stdout
    );
    let digest_line = lines_with(&pushed.stdout, "1.0: digest: sha256:");
    assert_eq!(digest_line.len(), 1, "{}", pushed.stdout);
    let digest = digest_line[0]
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();

    // A second push finds everything there and names the same manifest.
    let again = b.docker(&["push", &name]).ok();
    assert_eq!(
        lines_with(&again.stdout, "Layer already exists").len(),
        1,
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains(&digest), "{}", again.stdout);

    b.docker(&["rmi", &name, "busybox"]).ok();
    assert!(b.docker(&["images", "-q"]).ok().stdout.trim().is_empty());
    let pulled = b.docker(&["pull", &name]).ok();
    assert!(
        pulled.stdout.contains("1.0: Pulling from team/busybox"),
        "{}",
        pulled.stdout
    );
    assert_eq!(
        lines_with(&pulled.stdout, "Pull complete").len(),
        1,
        "{}",
        pulled.stdout
    );
    assert!(
        pulled.stdout.contains(&format!("Digest: {digest}")),
        "{}",
        pulled.stdout
    );
    assert!(
        pulled
            .stdout
            .contains(&format!("Status: Downloaded newer image for {name}")),
        "{}",
        pulled.stdout
    );

    let repo_digest = format!("{}/team/busybox@{digest}", reg.addr);
    let inspect = b
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .RepoDigests}} {{json .RepoTags}}",
            &name,
        ])
        .ok();
    assert_eq!(inspect.out(), format!("[\"{repo_digest}\"] [\"{name}\"]"));
    let listed = b
        .docker(&[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
        ])
        .ok();
    assert_eq!(
        listed.out(),
        format!("{}/team/busybox 1.0 {digest}", reg.addr)
    );
    assert_eq!(
        b.docker(&["run", "--rm", &name, "echo", "pulled"])
            .ok()
            .out(),
        "pulled"
    );

    let up_to_date = b.docker(&["pull", &name]).ok();
    assert!(
        up_to_date
            .stdout
            .contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        up_to_date.stdout
    );
    assert!(
        !up_to_date.stdout.contains("Pull complete"),
        "{}",
        up_to_date.stdout
    );

    // By digest: the same image, found by its repo digest.
    b.docker(&["rmi", &name]).ok();
    let by_digest = b.docker(&["pull", &repo_digest]).ok();
    assert!(
        by_digest.stdout.contains(&format!("Digest: {digest}")),
        "{}",
        by_digest.stdout
    );
    assert_eq!(
        b.docker(&["run", "--rm", &repo_digest, "echo", "by digest"])
            .ok()
            .out(),
        "by digest"
    );
    b.finish();
}

#[test]
fn run_pulls_an_image_it_does_not_have() {
    let reg = Registry::start();
    push_layered(
        &reg,
        "auto",
        Some("latest"),
        "amd64",
        &[(
            layer_tar(&[("hello.txt", b"from the registry\n")]),
            Compression::Gzip,
        )],
    );
    let b = Berth::start();
    let name = format!("{}/auto", reg.addr);
    let run = b.docker(&["run", "--rm", &name, "cat", "/hello.txt"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "from the registry\n");
    assert!(
        run.stderr
            .contains(&format!("Unable to find image '{name}:latest' locally")),
        "{}",
        run.stderr
    );

    let missing = b.docker(&["run", "--rm", &format!("{}/auto:nope", reg.addr), "true"]);
    assert_eq!(missing.code, 125, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains(&format!("manifest for {}/auto:nope not found", reg.addr)),
        "{}",
        missing.stderr
    );
    b.finish();
}

#[test]
fn layers_in_gzip_and_zstd_with_whiteouts_stack_up() {
    let reg = Registry::start();
    let extra = [
        (
            layer_tar(&[("a.txt", &b"layer a\n"[..]), ("etc/remove-me", &b"x"[..])]),
            Compression::Gzip,
        ),
        (
            layer_tar(&[
                ("b.txt", &b"layer b\n"[..]),
                ("etc/.wh.remove-me", &b""[..]),
            ]),
            Compression::Zstd,
        ),
    ];
    push_layered(&reg, "stack", Some("v1"), "amd64", &extra);
    let b = Berth::start();
    let name = format!("{}/stack:v1", reg.addr);
    let pulled = b.docker(&["pull", &name]).ok();
    assert_eq!(
        lines_with(&pulled.stdout, "Pull complete").len(),
        3,
        "{}",
        pulled.stdout
    );
    let out = b
        .docker(&[
            "run",
            "--rm",
            &name,
            "sh",
            "-c",
            "cat /a.txt /b.txt; test -e /etc/remove-me && echo still-there; echo done",
        ])
        .ok();
    assert_eq!(out.stdout, "layer a\nlayer b\ndone\n");
    let layers = b
        .docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &name])
        .ok();
    assert_eq!(layers.out(), "3");

    // A second image on the same base: the shared layer is not fetched again.
    push_layered(
        &reg,
        "other",
        Some("v1"),
        "amd64",
        &[(layer_tar(&[("c.txt", b"c\n")]), Compression::Gzip)],
    );
    let other = b.docker(&["pull", &format!("{}/other:v1", reg.addr)]).ok();
    assert_eq!(
        lines_with(&other.stdout, "Already exists").len(),
        1,
        "{}",
        other.stdout
    );
    assert_eq!(
        lines_with(&other.stdout, "Pull complete").len(),
        1,
        "{}",
        other.stdout
    );
    b.finish();
}

#[test]
fn an_index_is_resolved_to_the_requested_platform() {
    let reg = Registry::start();
    let (amd, amd_bytes, amd_type) = push_layered(
        &reg,
        "multi",
        None,
        "amd64",
        &[(layer_tar(&[("arch", b"amd64\n")]), Compression::Gzip)],
    );
    let (arm, arm_bytes, arm_type) = push_layered(
        &reg,
        "multi",
        None,
        "arm64",
        &[(layer_tar(&[("arch", b"arm64\n")]), Compression::Gzip)],
    );
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": arm_type, "digest": arm, "size": arm_bytes.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": amd_type, "digest": amd, "size": amd_bytes.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }))
    .unwrap();
    let index_digest = reg.put_manifest(
        "multi",
        "latest",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let b = Berth::start();
    let name = format!("{}/multi", reg.addr);

    let host = b.docker(&["pull", &name]).ok();
    assert!(
        host.stdout.contains(&format!("Digest: {index_digest}")),
        "{}",
        host.stdout
    );
    assert_eq!(
        b.docker(&["image", "inspect", "-f", "{{.Architecture}}", &name])
            .ok()
            .out(),
        "amd64"
    );
    assert_eq!(
        b.docker(&["run", "--rm", &name, "cat", "/arch"]).ok().out(),
        "amd64"
    );

    b.docker(&["pull", "--platform", "linux/arm64", &name]).ok();
    assert_eq!(
        b.docker(&["image", "inspect", "-f", "{{.Architecture}}", &name])
            .ok()
            .out(),
        "arm64"
    );

    let none = b.docker(&["pull", "--platform", "linux/s390x", &name]);
    assert_ne!(none.code, 0);
    assert!(
        none.stderr
            .contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{}",
        none.stderr
    );
    b.finish();
}

#[test]
fn a_corrupt_blob_is_refused_and_nothing_is_kept() {
    let reg = Registry::start();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    push_layered(
        &reg,
        "bad",
        Some("v1"),
        "amd64",
        &[(layer_tar(&[("big", &big)]), Compression::Gzip)],
    );
    let manifest: serde_json::Value = {
        let out = std::process::Command::new("curl")
            .args([
                "-sSf",
                "-H",
                "Accept: application/vnd.docker.distribution.manifest.v2+json",
            ])
            .arg(format!("http://{}/v2/bad/manifests/v1", reg.addr))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let bad = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    reg.corrupt_blob(&bad);
    let b = Berth::start();
    let pull = b.docker(&["pull", &format!("{}/bad:v1", reg.addr)]);
    assert_ne!(pull.code, 0, "{pull:?}");
    assert!(pull.stderr.contains(&bad), "{}", pull.stderr);
    assert!(b.docker(&["images", "-q"]).ok().stdout.trim().is_empty());
    // No half-made snapshot and no blob of the failed image is left; the
    // good base layer may stay until the next collection, but no scratch.
    let snapshots: Vec<String> = std::fs::read_dir(b.data_root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        snapshots.iter().all(|s| !s.starts_with(".tmp")),
        "{snapshots:?}"
    );
    assert_eq!(
        std::fs::read_dir(b.data_root().join("content/ingest"))
            .unwrap()
            .count(),
        0
    );
    let bad_hex = &bad[7..];
    assert!(!b.data_root().join("content/sha256").join(bad_hex).exists());
    b.finish();
}

#[test]
fn concurrent_pulls_fetch_each_layer_once() {
    let reg = Registry::start();
    let big: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 11) as u8)
        .collect();
    push_layered(
        &reg,
        "shared",
        Some("v1"),
        "amd64",
        &[(layer_tar(&[("big", &big)]), Compression::Gzip)],
    );
    let b = Berth::start();
    let name = format!("{}/shared:v1", reg.addr);
    let children: Vec<_> = (0..3)
        .map(|_| {
            b.docker_cmd(&["pull", &name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &String::from_utf8(
            std::process::Command::new("curl")
                .args([
                    "-sSf",
                    "-H",
                    "Accept: application/vnd.docker.distribution.manifest.v2+json",
                ])
                .arg(format!("http://{}/v2/shared/manifests/v1", reg.addr))
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let d = layer["digest"].as_str().unwrap();
        assert_eq!(reg.blob_downloads(d), 1, "layer {d} fetched more than once");
    }
    assert_eq!(
        b.docker(&["run", "--rm", &name, "sh", "-c", "wc -c < /big"])
            .ok()
            .out(),
        "8000000"
    );
    b.finish();
}

#[test]
fn login_and_credentials_for_a_basic_auth_registry() {
    let reg = Registry::with_htpasswd("tester", "s3cret pass");
    let b = Berth::start();
    b.load_busybox();
    let name = format!("{}/private/busybox:1", reg.addr);
    b.docker(&["tag", "busybox", &name]).ok();

    let anonymous = b.docker(&["push", &name]);
    assert_ne!(anonymous.code, 0, "{anonymous:?}");
    assert!(
        anonymous.stderr.contains("unauthorized") || anonymous.stdout.contains("unauthorized"),
        "{anonymous:?}"
    );

    let wrong = b.docker_stdin(
        &["login", "-u", "tester", "--password-stdin", &reg.addr],
        b"wrong",
    );
    assert_ne!(wrong.code, 0, "{wrong:?}");
    assert!(
        wrong.stderr.contains("401 Unauthorized"),
        "{}",
        wrong.stderr
    );

    let login = b.docker_stdin(
        &["login", "-u", "tester", "--password-stdin", &reg.addr],
        b"s3cret pass",
    );
    assert_eq!(login.code, 0, "{login:?}");
    assert!(login.stdout.contains("Login Succeeded"), "{}", login.stdout);

    let pushed = b.docker(&["push", &name]).ok();
    assert_eq!(
        lines_with(&pushed.stdout, ": Pushed").len(),
        1,
        "{}",
        pushed.stdout
    );
    b.docker(&["rmi", &name]).ok();
    b.docker(&["pull", &name]).ok();
    assert_eq!(
        b.docker(&["run", "--rm", &name, "echo", "private"])
            .ok()
            .out(),
        "private"
    );

    b.docker(&["logout", &reg.addr]).ok();
    b.docker(&["rmi", &name]).ok();
    let after_logout = b.docker(&["pull", &name]);
    assert_ne!(after_logout.code, 0, "{after_logout:?}");
    assert!(
        after_logout
            .stderr
            .contains("unauthorized: authentication required"),
        "{}",
        after_logout.stderr
    );
    b.finish();
}

#[test]
fn token_auth_registry_with_login() {
    let reg = Registry::with_token_auth("robot", "tok3n-pass");
    let b = Berth::start();
    b.load_busybox();
    let name = format!("{}/secure/busybox:2", reg.addr);
    b.docker(&["tag", "busybox", &name]).ok();

    let anonymous = b.docker(&["push", &name]);
    assert_ne!(anonymous.code, 0, "{anonymous:?}");

    let wrong = b.docker_stdin(
        &["login", "-u", "robot", "--password-stdin", &reg.addr],
        b"nope",
    );
    assert_ne!(wrong.code, 0, "{wrong:?}");
    assert!(
        wrong.stderr.contains("401 Unauthorized"),
        "{}",
        wrong.stderr
    );
    let login = b.docker_stdin(
        &["login", "-u", "robot", "--password-stdin", &reg.addr],
        b"tok3n-pass",
    );
    assert_eq!(login.code, 0, "{login:?}");

    let pushed = b.docker(&["push", &name]).ok();
    assert_eq!(
        lines_with(&pushed.stdout, ": Pushed").len(),
        1,
        "{}",
        pushed.stdout
    );
    b.docker(&["rmi", &name]).ok();
    let pulled = b.docker(&["pull", &name]).ok();
    assert!(
        pulled.stdout.contains("Status: Downloaded newer image"),
        "{}",
        pulled.stdout
    );
    assert_eq!(
        b.docker(&["run", "--rm", &name, "echo", "token"])
            .ok()
            .out(),
        "token"
    );
    b.finish();
}

#[test]
fn an_engine_killed_during_a_pull_leaves_nothing_behind() {
    let reg = Registry::start();
    let big: Vec<u8> = (0..60_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    push_layered(
        &reg,
        "slow",
        Some("v1"),
        "amd64",
        &[(layer_tar(&[("big", &big)]), Compression::Gzip)],
    );
    let mut b = Berth::start();
    let name = format!("{}/slow:v1", reg.addr);
    let mut pull = b
        .docker_cmd(&["pull", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a layer is being written, then kill the engine mid-way.
    let ingest = b.data_root().join("content/ingest");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(&ingest).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    b.kill_berthd();
    let _ = pull.wait();
    b.spawn_berthd();
    assert!(b.docker(&["images", "-q"]).ok().stdout.trim().is_empty());
    assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(b.data_root().join("snapshots"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(b.data_root().join("content/sha256"))
            .unwrap()
            .count(),
        0
    );
    // And the next pull completes.
    b.docker(&["pull", &name]).ok();
    assert_eq!(
        b.docker(&["run", "--rm", &name, "sh", "-c", "wc -c < /big"])
            .ok()
            .out(),
        "60000000"
    );
    b.finish();
}

#[test]
fn all_tags_push_and_pull_with_image_events() {
    let reg = Registry::start();
    let b = Berth::start();
    b.load_busybox();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let repo = format!("{}/many", reg.addr);
    for tag in ["a", "b", "c"] {
        b.docker(&["tag", "busybox", &format!("{repo}:{tag}")]).ok();
    }
    let pushed = b.docker(&["push", "--all-tags", &repo]).ok();
    for tag in ["a", "b", "c"] {
        assert!(
            pushed.stdout.contains(&format!("{tag}: digest: sha256:")),
            "{}",
            pushed.stdout
        );
    }
    b.docker(&[
        "rmi",
        &format!("{repo}:a"),
        &format!("{repo}:b"),
        &format!("{repo}:c"),
    ])
    .ok();
    let pulled = b.docker(&["pull", "--all-tags", &repo]).ok();
    for tag in ["a", "b", "c"] {
        assert!(
            pulled.stdout.contains(&format!("{tag}: Pulling from many")),
            "{}",
            pulled.stdout
        );
    }
    let tags = b.docker(&["images", &repo, "--format", "{{.Tag}}"]).ok();
    let mut tags: Vec<&str> = tags.stdout.lines().collect();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c"]);

    // What happened is in the event stream, as image events.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = b
        .docker(&[
            "events",
            "--since",
            &t0.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ])
        .ok();
    for want in [
        format!("tag {repo}:a"),
        format!("push {repo}:b"),
        format!("untag {repo}:c"),
        format!("pull {repo}:a"),
    ] {
        assert!(
            events.stdout.lines().any(|l| l == want),
            "missing {want:?} in:\n{}",
            events.stdout
        );
    }
    b.finish();
}

#[test]
fn docker_hub_images_come_through_a_mirror_with_fallback() {
    // The mirror holds what Docker Hub would: library/busybox.
    let mirror = Registry::start();
    let seed = Berth::start();
    seed.load_busybox();
    let name = format!("{}/library/busybox:mirrored", mirror.addr);
    seed.docker(&["tag", "busybox", &name]).ok();
    seed.docker(&["push", &name]).ok();
    seed.finish();

    // A first mirror that refuses connections (a port nothing listens on
    // any more), then the working one: the pull falls back to the second,
    // and never reaches Docker Hub (no traffic leaves loopback).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead_url = format!("http://127.0.0.1:{dead}");
    let good_url = format!("http://{}", mirror.addr);
    let b = Berth::start_with(&[
        "--registry-mirror",
        &dead_url,
        "--registry-mirror",
        &good_url,
    ]);
    let mirrors = b
        .docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"])
        .ok();
    assert_eq!(mirrors.out(), format!("[\"{dead_url}/\",\"{good_url}/\"]"));
    let pulled = b.docker(&["pull", "busybox:mirrored"]).ok();
    assert!(
        pulled.stdout.contains("docker.io/library/busybox:mirrored"),
        "{}",
        pulled.stdout
    );
    let out = b
        .docker(&["run", "--rm", "busybox:mirrored", "echo", "from-mirror"])
        .ok();
    assert_eq!(out.out(), "from-mirror");
    // A bad mirror URL stops berthd with dockerd's reason.
    let bad = std::process::Command::new(berth_compat_tests::bin_dir().join("berthd"))
        .args(["--validate", "--registry-mirror", "ftp://x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    b.finish();
}
