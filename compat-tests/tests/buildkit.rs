//! `docker build` as a stock Docker install runs it: the docker CLI hands
//! it to the buildx plugin (installed by contrib/setup.sh), whose `docker`
//! driver speaks BuildKit's gRPC API over `/grpc` and serves the context
//! over `/session`. No DOCKER_BUILDKIT is set here. Also `docker buildx`
//! outputs and cache commands, and `docker compose build`.

use std::path::{Path, PathBuf};

use berth_compat_tests::{Berth, Run};

fn context(b: &Berth, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = b.root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    dir
}

/// The CLI in `dir`, as a user types it (plain progress, so the vertexes
/// can be read).
fn docker_in(b: &Berth, dir: &Path, args: &[&str]) -> Run {
    let out = b
        .docker_cmd(args)
        .env_remove("DOCKER_BUILDKIT")
        .env_remove("BUILDKIT_PROGRESS")
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How the vertex named `name…` ended in plain progress output
/// (`#7 [3/3] RUN …` … `#7 CACHED` / `#7 DONE 0.1s` / `#7 ERROR: …`).
fn vertex_end(log: &str, name: &str) -> String {
    let number = log
        .lines()
        .find_map(|l| {
            let (n, rest) = l.split_once(' ')?;
            rest.starts_with(name).then(|| n.to_string())
        })
        .unwrap_or_else(|| panic!("no vertex {name:?} in:\n{log}"));
    log.lines()
        .rev()
        .filter_map(|l| l.strip_prefix(&format!("{number} ")))
        .filter(|rest| {
            ["CACHED", "DONE", "ERROR"]
                .iter()
                .any(|e| rest.starts_with(e))
        })
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches(':')
                .to_string()
        })
        .next()
        .unwrap_or_default()
}

fn start() -> Berth {
    let b = Berth::start();
    let v = b.docker(&["buildx", "version"]);
    assert_eq!(
        v.code, 0,
        "the buildx plugin is missing: run contrib/setup.sh --deps ({})",
        v.stderr
    );
    b.load_busybox();
    b
}

const APP: &[(&str, &str)] = &[
    (
        "Dockerfile",
        "# syntax=docker/dockerfile:1\nFROM busybox\nCOPY . /app\nENV GREETING=hi\nRUN echo \"built $GREETING\" && cat /app/a.txt > /copied\n",
    ),
    ("a.txt", "hello from the context\n"),
    ("secret.env", "TOKEN=do-not-send\n"),
    (".dockerignore", "secret.env\n"),
];

#[test]
fn docker_build_goes_through_buildkit_and_loads_the_image() {
    let b = start();
    let dir = context(&b, "app", APP);
    let r = docker_in(
        &b,
        &dir,
        &["build", "--progress=plain", "-t", "bk-app", "."],
    )
    .ok();
    let log = &r.stderr;
    assert_eq!(vertex_end(log, "[3/3] RUN echo"), "DONE", "{log}");
    for want in [
        "[internal] load build definition from Dockerfile",
        "[internal] load .dockerignore",
        "[internal] load build context",
        "[internal] load metadata for docker.io/library/busybox:latest",
        "[1/3] FROM docker.io/library/busybox",
        "[2/3] COPY . /app",
        "[3/3] RUN echo \"built $GREETING\" && cat /app/a.txt > /copied",
        " built hi\n",
        "exporting to image",
        "naming to docker.io/library/bk-app done",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    // ENV makes no vertex in BuildKit's numbering.
    assert!(!log.contains("] ENV"), "{log}");
    assert_eq!(
        b.docker(&["run", "--rm", "bk-app", "cat", "/copied"])
            .ok()
            .out(),
        "hello from the context"
    );
    // .dockerignore'd files never reach the image (nor the engine).
    assert_eq!(
        b.docker(&["run", "--rm", "bk-app", "ls", "-A", "/app"])
            .ok()
            .out(),
        ".dockerignore\nDockerfile\na.txt"
    );

    // Unchanged: every step from the cache, the same image.
    let id = b
        .docker(&["image", "inspect", "-f", "{{.Id}}", "bk-app"])
        .ok();
    let r = docker_in(
        &b,
        &dir,
        &["build", "--progress=plain", "-t", "bk-app", "."],
    )
    .ok();
    for step in ["[2/3] COPY . /app", "[3/3] RUN echo"] {
        assert_eq!(
            vertex_end(&r.stderr, step),
            "CACHED",
            "{step}: {}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains(" built hi"), "{}", r.stderr);
    let again = b
        .docker(&["image", "inspect", "-f", "{{.Id}}", "bk-app"])
        .ok();
    assert_eq!(id.out(), again.out());
    b.finish();
}

#[test]
fn a_failing_run_names_its_step_and_exit_code() {
    let b = start();
    let dir = context(
        &b,
        "fail",
        &[(
            "Dockerfile",
            "FROM busybox\nWORKDIR /w\nRUN echo to-out; echo to-err >&2; exit 3\n",
        )],
    );
    let r = docker_in(&b, &dir, &["build", "--progress=plain", "."]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let log = &r.stderr;
    for want in [
        "[2/3] WORKDIR /w",
        " to-out\n",
        " to-err\n",
        " > [3/3] RUN echo to-out; echo to-err >&2; exit 3:",
        "ERROR: failed to build: failed to solve: executor failed running [/bin/sh -c echo to-out; echo to-err >&2; exit 3]: exit code: 3",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    // An unknown instruction names its line, before anything runs.
    let dir = context(&b, "bad", &[("Dockerfile", "FROM busybox\nFROB x\n")]);
    let r = docker_in(&b, &dir, &["build", "--progress=plain", "."]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.to_lowercase().contains("frob"), "{}", r.stderr);
    b.finish();
}

#[test]
fn build_options_reach_the_dockerfile() {
    let b = start();
    let dir = context(
        &b,
        "opts",
        &[(
            "Dockerfile.dev",
            "FROM busybox AS base\nARG WHO=nobody\nRUN echo \"$WHO\" > /who\n\nFROM base AS test\nRUN echo test-stage > /stage\n\nFROM base AS unused\nRUN exit 9\n",
        )],
    );
    let r = docker_in(
        &b,
        &dir,
        &[
            "build",
            "--progress=plain",
            "-f",
            "Dockerfile.dev",
            "--target",
            "test",
            "--build-arg",
            "WHO=someone",
            "--label",
            "org.example.l=v",
            "-t",
            "bk-opts",
            ".",
        ],
    )
    .ok();
    // Stages are named as BuildKit names them in a multi-stage file.
    assert!(
        r.stderr
            .contains("[base 1/2] FROM docker.io/library/busybox"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("[test 2/2] RUN echo test-stage > /stage"),
        "{}",
        r.stderr
    );
    assert_eq!(
        b.docker(&["run", "--rm", "bk-opts", "cat", "/who", "/stage"])
            .ok()
            .out(),
        "someone\ntest-stage"
    );
    assert_eq!(
        b.docker(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"org.example.l\"}}",
            "bk-opts"
        ])
        .ok()
        .out(),
        "v"
    );
    b.finish();
}

#[test]
fn outputs_local_tar_iidfile_and_metadata() {
    let b = start();
    let dir = context(&b, "out", APP);

    let local = b.root.join("local-out");
    let r = docker_in(
        &b,
        &dir,
        &[
            "buildx",
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", local.display()),
            ".",
        ],
    )
    .ok();
    assert!(r.stderr.contains("exporting to client"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(local.join("copied")).unwrap(),
        "hello from the context\n"
    );
    assert!(local.join("bin/busybox").is_file());
    assert!(!local.join("app/secret.env").exists());
    // busybox's applets are hard links of one file, and stay so.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(local.join("bin/ls")).unwrap().ino(),
        std::fs::metadata(local.join("bin/busybox")).unwrap().ino()
    );

    let tar = b.root.join("out.tar");
    docker_in(
        &b,
        &dir,
        &[
            "buildx",
            "build",
            "-q",
            "-o",
            &format!("type=tar,dest={}", tar.display()),
            ".",
        ],
    )
    .ok();
    let listing = std::process::Command::new("tar")
        .arg("tvf")
        .arg(&tar)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.lines().any(|l| l.ends_with(" copied")), "{listing}");
    assert!(
        listing.lines().any(|l| l.ends_with("bin/ls link to bin/[")),
        "{listing}"
    );

    let iid = b.root.join("iid");
    let meta = b.root.join("meta.json");
    docker_in(
        &b,
        &dir,
        &[
            "buildx",
            "build",
            "--load",
            "-q",
            "--iidfile",
            iid.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
            "-t",
            "bk-out:1",
            "-t",
            "bk-out:2",
            ".",
        ],
    )
    .ok();
    let id = b
        .docker(&["image", "inspect", "-f", "{{.Id}}", "bk-out:2"])
        .ok();
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id.out());
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(meta["containerimage.digest"], id.out());
    assert_eq!(
        b.docker(&["image", "inspect", "-f", "{{.Id}}", "bk-out:1"])
            .ok()
            .out(),
        id.out()
    );
    b.finish();
}

#[test]
fn buildx_describes_the_builder_and_its_cache() {
    let b = start();
    let inspect = b.docker(&["buildx", "inspect"]).ok();
    let field = |name: &str| {
        inspect
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("Driver:"), "docker", "{}", inspect.stdout);
    assert_eq!(
        field("BuildKit version:"),
        "v0.13.0-berth",
        "{}",
        inspect.stdout
    );
    assert!(
        field("Platforms:").starts_with("linux/"),
        "{}",
        inspect.stdout
    );
    let dir = context(&b, "du", APP);
    docker_in(&b, &dir, &["build", "-q", "."]).ok();
    let du = b.docker(&["buildx", "du"]).ok();
    assert!(du.stdout.contains("Reclaimable:"), "{}", du.stdout);
    assert!(du.stdout.lines().count() > 3, "{}", du.stdout);
    let pruned = b.docker(&["buildx", "prune", "-f"]).ok();
    assert!(pruned.stdout.contains("Total:"), "{}", pruned.stdout);
    let du = b.docker(&["buildx", "du"]).ok();
    assert!(
        du.stdout.contains("Total:\t0B")
            || du.stdout.trim().is_empty()
            || du.stdout.contains("Reclaimable:\t0B"),
        "{}",
        du.stdout
    );
    // The next build runs its steps again.
    let r = docker_in(&b, &dir, &["build", "--progress=plain", "."]).ok();
    assert!(r.stderr.contains(" built hi"), "{}", r.stderr);
    b.finish();
}

#[test]
fn docker_compose_builds_with_buildkit() {
    let b = start();
    let dir = context(
        &b,
        "proj",
        &[
            ("compose.yaml", "services:\n  app:\n    build:\n      context: .\n      args:\n        GREETING: hello-compose\n    image: bkproj-app:latest\n"),
            ("Dockerfile", "FROM busybox\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n"),
        ],
    );
    // compose prints the build's progress on stdout.
    let r = docker_in(&b, &dir, &["compose", "--progress=plain", "build"]).ok();
    assert!(
        r.stdout
            .contains("[2/2] RUN echo \"$GREETING\" > /greeting"),
        "{}",
        r.stdout
    );
    assert_eq!(
        b.docker(&["run", "--rm", "bkproj-app"]).ok().out(),
        "hello-compose"
    );
    b.finish();
}

#[test]
fn grpc_and_session_refuse_plain_requests_as_dockerd_does() {
    let b = Berth::start();
    let r = b.api("POST", "/v1.41/grpc", None);
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "{\"message\":\"no upgrade proto in request\"}\n");
    let r = b.api("POST", "/v1.41/session", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "{\"message\":\"no upgrade proto in request\"}\n");
    b.finish();
}
