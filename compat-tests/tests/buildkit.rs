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
            "FROM busybox AS base\nARG WHO=nobody\nRUN echo \"$WHO\" > /who\n\nFROM base AS unused\nRUN exit 9\n\nFROM base AS test\nRUN echo test-stage > /stage\n",
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
    // A stage the target does not need is not built (BuildKit's rule;
    // "unused" would fail). Stages are named as BuildKit names them.
    assert!(!r.stderr.contains("[unused"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("[base 1/2] FROM docker.io/library/busybox"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("[test 1/1] RUN echo test-stage > /stage"),
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
fn builder_prune_takes_filters_and_size_limits() {
    let b = start();
    let dir = context(
        &b,
        "prune",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=cache,target=/c echo x > /c/f && echo first > /first\n\
             RUN echo second > /second\n",
        )],
    );
    let types = |b: &Berth| {
        let du = b.docker(&["buildx", "du", "--verbose"]).ok().stdout;
        let mut t: Vec<String> = du
            .lines()
            .filter_map(|l| l.strip_prefix("Type:"))
            .map(|t| t.trim().to_string())
            .collect();
        t.sort();
        t
    };
    docker_in(&b, &dir, &["build", "-q", "."]).ok();
    assert_eq!(types(&b), ["exec.cachemount", "regular", "regular"]);
    // du and prune read the same filters.
    let du = b
        .docker(&["buildx", "du", "--filter", "type=exec.cachemount"])
        .ok();
    assert_eq!(du.stdout.lines().count(), 2, "{}", du.stdout);
    b.docker(&["buildx", "prune", "-f", "--filter", "type=exec.cachemount"])
        .ok();
    assert_eq!(types(&b), ["regular", "regular"]);
    // Size limits: nothing goes while the cache fits; past the limit the
    // least recently used go first (the first step's record).
    b.docker(&["buildx", "prune", "-f", "--reserved-space", "1GB"])
        .ok();
    assert_eq!(types(&b), ["regular", "regular"]);
    // The two steps' layers hold 6 and 7 bytes of files ("first\n",
    // "second\n"), which is what dockerd counts as a layer's size.
    b.docker(&["buildx", "prune", "-f", "--reserved-space", "10B"])
        .ok();
    let du = b.docker(&["buildx", "du", "--verbose"]).ok().stdout;
    assert!(du.contains("echo second > /second"), "{du}");
    assert!(!du.contains("echo first > /first"), "{du}");
    // The legacy API takes the same filters.
    let r = b.api(
        "POST",
        "/v1.41/build/prune?filters=%7B%22type%22%3A%5B%22regular%22%5D%7D",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(types(&b).is_empty());
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

/// Compose's `cache_to`/`cache_from` reach the same solve: a pushed
/// service image carries its steps, and after a prune the next
/// `compose build` takes them from the registry.
#[test]
fn docker_compose_builds_with_registry_cache() {
    let reg = berth_compat_tests::registry::Registry::start();
    let b = start();
    let image = format!("{}/cproj/app:1", reg.addr);
    let compose = format!(
        "services:\n  app:\n    image: {image}\n    build:\n      context: .\n      cache_from: [\"type=registry,ref={image}\"]\n      cache_to: [\"type=inline\"]\n"
    );
    let dir = context(
        &b,
        "cproj",
        &[
            ("compose.yaml", compose.as_str()),
            (
                "Dockerfile",
                "FROM busybox\nRUN cat /proc/sys/kernel/random/uuid > /id\n",
            ),
        ],
    );
    // The first build finds no cache image: that vertex fails, not the build.
    docker_in(&b, &dir, &["compose", "--progress=plain", "build"]).ok();
    docker_in(&b, &dir, &["compose", "push"]).ok();
    let id = b.docker(&["run", "--rm", &image, "cat", "/id"]).ok();
    b.docker(&["rmi", &image]).ok();
    b.docker(&["buildx", "prune", "-af"]).ok();
    let r = docker_in(&b, &dir, &["compose", "--progress=plain", "build"]).ok();
    assert_eq!(
        vertex_end(&r.stdout, "[2/2] RUN cat"),
        "CACHED",
        "{}",
        r.stdout
    );
    let again = b.docker(&["run", "--rm", &image, "cat", "/id"]).ok();
    assert_eq!(again.out(), id.out());
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

#[test]
fn run_mounts_secrets_caches_binds_tmpfs_and_network() {
    let b = start();
    let token = "tok3n-value-7731";
    let dir = context(
        &b,
        "mounts",
        &[
            ("tok.txt", token),
            ("data/file", "bound content\n"),
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /seen-file && ls -l /run/secrets/tok | cut -c1-10 > /secret-mode\n\
                 RUN --mount=type=secret,id=tok,env=TOKV sh -c 'printf %s \"$TOKV\" | sha256sum | cut -c1-64 > /seen-env'\n\
                 RUN --mount=type=cache,target=/cache,id=counter sh -c 'echo x >> /cache/runs; wc -l < /cache/runs > /runs'\n\
                 RUN --mount=type=tmpfs,target=/t sh -c 'mount | grep -c \" /t type tmpfs\" > /tmpfs; touch /t/x && chmod +x /t/x'\n\
                 RUN --mount=type=bind,source=data,target=/d cat /d/file > /bound\n\
                 RUN --network=none sh -c 'ip -o link | wc -l > /links'\n",
            ),
        ],
    );
    let secret = format!("id=tok,src={}", dir.join("tok.txt").display());
    docker_in(
        &b,
        &dir,
        &["build", "-q", "--secret", &secret, "-t", "bk-mounts", "."],
    )
    .ok();
    let cat = |f: &str| {
        b.docker(&["run", "--rm", "bk-mounts", "cat", f])
            .ok()
            .out()
            .trim()
            .to_string()
    };
    // The steps saw the secret (they kept only its digest)...
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    assert_eq!(cat("/seen-file"), digest);
    assert_eq!(cat("/secret-mode"), "-r--------");
    assert_eq!(cat("/seen-env"), digest);
    assert_eq!(cat("/runs"), "1");
    assert_eq!(cat("/tmpfs"), "1");
    assert_eq!(cat("/bound"), "bound content");
    assert_eq!(cat("/links"), "1", "only lo with --network=none");
    // ...and it is in no layer and in no history line.
    let saved = b
        .docker_cmd(&["save", "bk-mounts"])
        .output()
        .unwrap()
        .stdout;
    let needle = token.as_bytes();
    assert!(!saved.windows(needle.len()).any(|w| w == needle));
    let history = b.docker(&["history", "--no-trunc", "bk-mounts"]).ok();
    assert!(!history.stdout.contains(token), "{}", history.stdout);

    // The cache mount outlives the build, even without the step cache...
    docker_in(
        &b,
        &dir,
        &[
            "build",
            "-q",
            "--no-cache",
            "--secret",
            &secret,
            "-t",
            "bk-mounts",
            ".",
        ],
    )
    .ok();
    assert_eq!(cat("/runs"), "2");
    let du = b.docker(&["buildx", "du", "--verbose"]).ok();
    assert!(du.stdout.contains("exec.cachemount"), "{}", du.stdout);
    assert!(du.stdout.contains("cached mount /cache"), "{}", du.stdout);
    // ...until it is pruned.
    b.docker(&["buildx", "prune", "-f"]).ok();
    docker_in(
        &b,
        &dir,
        &[
            "build",
            "-q",
            "--no-cache",
            "--secret",
            &secret,
            "-t",
            "bk-mounts",
            ".",
        ],
    )
    .ok();
    assert_eq!(cat("/runs"), "1");
    b.finish();
}

#[test]
fn bind_mounts_from_stages_writable_binds_and_their_cache_keys() {
    let b = start();
    let dockerfile = "FROM busybox AS tools\n\
        RUN echo tool-output > /tool && mkdir /seed && echo seeded > /seed/s\n\
        FROM busybox\n\
        RUN --mount=type=bind,from=tools,source=/tool,target=/t cat /t > /from-stage\n\
        RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/new && cat /ctx/new > /rw-ok\n\
        RUN --mount=type=bind,source=input.txt,target=/in cat /in > /from-ctx\n\
        RUN --mount=type=cache,id=seeded,target=/c,from=tools,source=/seed cat /c/s > /from-seed\n";
    let dir = context(
        &b,
        "bind-from",
        &[("input.txt", "first\n"), ("Dockerfile", dockerfile)],
    );
    let read = |b: &Berth| {
        b.docker(&[
            "run",
            "--rm",
            "bk-bind",
            "cat",
            "/from-stage",
            "/rw-ok",
            "/from-ctx",
            "/from-seed",
        ])
        .ok()
        .out()
        .to_string()
    };
    docker_in(&b, &dir, &["build", "-q", "-t", "bk-bind", "."]).ok();
    assert_eq!(read(&b), "tool-output\nscribble\nfirst\nseeded");
    // What the step wrote into its writable bind stayed in the step.
    assert!(!dir.join("new").exists());
    // The bound file is part of the step's cache key: changed, the step
    // runs again (the earlier steps stay cached).
    std::fs::write(dir.join("input.txt"), "second\n").unwrap();
    let r = docker_in(
        &b,
        &dir,
        &["build", "--progress=plain", "-t", "bk-bind", "."],
    )
    .ok();
    assert_eq!(
        vertex_end(&r.stderr, "[stage-1 2/5] RUN --mount=type=bind,from=tools"),
        "CACHED",
        "{}",
        r.stderr
    );
    assert_eq!(
        vertex_end(
            &r.stderr,
            "[stage-1 4/5] RUN --mount=type=bind,source=input.txt"
        ),
        "DONE",
        "{}",
        r.stderr
    );
    assert_eq!(read(&b), "tool-output\nscribble\nsecond\nseeded");
    b.finish();
}

#[test]
fn run_flags_are_checked_and_need_their_entitlements() {
    let b = start();
    let fails = |name: &str, dockerfile: &str, extra: &[&str]| {
        let dir = context(&b, name, &[("Dockerfile", dockerfile)]);
        let r = docker_in(
            &b,
            &dir,
            &[&["build", "--progress=plain"], extra, &["."]].concat(),
        );
        assert_ne!(r.code, 0, "{name} built: {}", r.stderr);
        r.stderr
    };
    let e = fails(
        "req",
        "FROM busybox\nRUN --mount=type=secret,id=nope,required=true true\n",
        &[],
    );
    assert!(e.contains("secret nope not found"), "{e}");
    let e = fails("host", "FROM busybox\nRUN --network=host true\n", &[]);
    assert!(e.contains("network.host is not allowed"), "{e}");
    let e = fails(
        "insecure",
        "FROM busybox\nRUN --security=insecure true\n",
        &[],
    );
    assert!(e.contains("security.insecure is not allowed"), "{e}");
    let e = fails(
        "badkey",
        "FROM busybox\nRUN --mount=type=cache,target=/c,colour=red true\n",
        &[],
    );
    assert!(e.contains("unexpected key 'colour' in 'colour=red'"), "{e}");
    // A secret that is not required and not given: the file is missing.
    let e = fails(
        "optional",
        "FROM busybox\nRUN --mount=type=secret,id=nope cat /run/secrets/nope\n",
        &[],
    );
    assert!(e.contains("exit code: 1"), "{e}");

    // The legacy builder refuses them in dockerd's words.
    let dir = context(
        &b,
        "legacy",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/c true\n",
        )],
    );
    let out = b
        .docker_cmd(&["build", "."])
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(&dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"),
        "{text}"
    );
    b.finish();
}

/// A real ssh-agent holding a fresh key; stopped by pid when dropped.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        use std::io::BufRead;
        let socket = dir.join("agent.sock");
        let mut child = std::process::Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ssh-agent (openssh-client)");
        // It prints its environment once the socket listens.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("SSH_AUTH_SOCK"), "{line}");
        let key = dir.join("key");
        let gen = std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "berth-test-key",
                "-f",
            ])
            .arg(&key)
            .status()
            .unwrap();
        assert!(gen.success());
        let add = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .status()
            .unwrap();
        assert!(add.success());
        Agent { child, socket }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_mount_ssh_forwards_the_callers_agent() {
    let b = start();
    let dir = context(
        &b,
        "ssh",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY tools /tools\nRUN --mount=type=ssh /tools/ld-linux-x86-64.so.2 --library-path /tools /tools/ssh-add -l\n",
        )],
    );
    // The host's real ssh-add, with its libraries, runs in the step and
    // asks the forwarded agent for its keys.
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::copy("/usr/bin/ssh-add", tools.join("ssh-add")).unwrap();
    let ldd = std::process::Command::new("ldd")
        .arg("/usr/bin/ssh-add")
        .output()
        .unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let name = Path::new(lib).file_name().unwrap();
        std::fs::copy(lib, tools.join(name)).unwrap();
    }
    let agent = Agent::start(&b.root);
    let ssh = format!("default={}", agent.socket.display());
    let r = docker_in(&b, &dir, &["build", "--progress=plain", "--ssh", &ssh, "."]).ok();
    assert!(
        r.stderr.contains("berth-test-key (ED25519)"),
        "{}",
        r.stderr
    );
    // Without --ssh the step runs with no agent, or fails when it is required.
    let r = docker_in(&b, &dir, &["build", "--progress=plain", "--no-cache", "."]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let dir = context(
        &b,
        "ssh-req",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=ssh,required=true true\n",
        )],
    );
    let r = docker_in(&b, &dir, &["build", "--progress=plain", "."]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("unset ssh forward key default"),
        "{}",
        r.stderr
    );
    drop(agent);
    b.finish();
}

#[test]
fn push_sends_the_image_with_the_callers_credentials() {
    let reg = berth_compat_tests::registry::Registry::with_htpasswd("builder", "s3cret");
    let b = start();
    let dir = context(&b, "push", APP);
    let name = format!("{}/bk/app:1", reg.addr);
    // Credentials live in the CLI's config: the session's Auth service
    // hands them over when the engine asks for that host.
    b.docker_stdin(
        &["login", "-u", "builder", "--password-stdin", &reg.addr],
        b"s3cret",
    )
    .ok();
    let r = docker_in(
        &b,
        &dir,
        &[
            "buildx",
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &name,
            ".",
        ],
    )
    .ok();
    assert!(
        r.stderr.contains(&format!("naming to {name}")),
        "{}",
        r.stderr
    );
    // buildx pushes a docker-driver build itself, once, as against dockerd
    // (whose exporter leaves `push` to it): one push vertex.
    let pushes: std::collections::HashSet<&str> = r
        .stderr
        .lines()
        .filter(|l| l.ends_with(&format!("pushing {name} with docker")))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(pushes.len(), 1, "{}", r.stderr);
    // Pulled back into a clean engine, it runs.
    let other = Berth::start();
    other
        .docker_stdin(
            &["login", "-u", "builder", "--password-stdin", &reg.addr],
            b"s3cret",
        )
        .ok();
    other.docker(&["pull", &name]).ok();
    assert_eq!(
        other
            .docker(&["run", "--rm", &name, "cat", "/copied"])
            .ok()
            .out(),
        "hello from the context"
    );
    other.finish();
    // Without credentials the push is refused, and says so.
    b.docker(&["logout", &reg.addr]).ok();
    let r = docker_in(
        &b,
        &dir,
        &[
            "buildx",
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &name,
            ".",
        ],
    );
    assert_ne!(r.code, 0, "{}", r.stderr);
    b.finish();
}

/// `--cache-to type=inline` puts the steps' records into the pushed image;
/// another engine with an empty cache takes those steps from the registry
/// (`--cache-from type=registry`): the same files, not a rerun.
#[test]
fn inline_cache_travels_through_a_registry() {
    let reg = berth_compat_tests::registry::Registry::start();
    let b = start();
    let files: &[(&str, &str)] = &[
        (
            "Dockerfile",
            "FROM busybox\nENV X=1\nCOPY a.txt /a.txt\nRUN cat /proc/sys/kernel/random/uuid > /id\nRUN echo two > /two\n",
        ),
        ("a.txt", "hello\n"),
    ];
    let dir = context(&b, "inline", files);
    let name = format!("{}/cache/app:1", reg.addr);
    let build = |b: &Berth, args: &[&str]| {
        let mut argv = vec!["buildx", "build", "--progress=plain"];
        argv.extend_from_slice(args);
        argv.push(".");
        docker_in(b, &dir, &argv)
    };
    let r = build(&b, &["--cache-to", "type=inline", "--push", "-t", &name]).ok();
    assert_eq!(
        vertex_end(&r.stderr, "exporting cache"),
        "DONE",
        "{}",
        r.stderr
    );
    let id = b
        .docker(&["run", "--rm", &name, "cat", "/id"])
        .ok()
        .out()
        .to_string();

    // A clean engine: nothing cached, not even the layers.
    let other = Berth::start();
    other.load_busybox();
    let from = format!("type=registry,ref={name}");
    let r = build(&other, &["--cache-from", &from, "-t", "from-cache"]).ok();
    let log = &r.stderr;
    assert_eq!(
        vertex_end(log, &format!("importing cache manifest from {name}")),
        "DONE",
        "{log}"
    );
    for step in ["[2/4] COPY a.txt", "[3/4] RUN cat", "[4/4] RUN echo"] {
        assert_eq!(vertex_end(log, step), "CACHED", "{step}: {log}");
    }
    let taken = other.docker(&["run", "--rm", "from-cache", "cat", "/id"]);
    assert_eq!(taken.ok().out(), id, "the step's file is the pushed one");
    // Only what was built is named: the cache's image is not pulled.
    let listed = other
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    let mut listed: Vec<&str> = listed.out().lines().collect();
    listed.sort();
    assert_eq!(listed, ["busybox:latest", "from-cache:latest"]);

    // A changed file: its COPY and every step after it run again.
    std::fs::write(dir.join("a.txt"), "changed\n").unwrap();
    let r = build(&other, &["--cache-from", &from, "-t", "from-cache"]).ok();
    assert_eq!(
        vertex_end(&r.stderr, "[2/4] COPY a.txt"),
        "DONE",
        "{}",
        r.stderr
    );
    assert_eq!(
        vertex_end(&r.stderr, "[3/4] RUN cat"),
        "DONE",
        "{}",
        r.stderr
    );
    let rerun = other.docker(&["run", "--rm", "from-cache", "cat", "/id"]);
    assert_ne!(rerun.ok().out(), id);

    // A cache image that is not there fails its vertex, not the build
    // (as BuildKit in dockerd: `<ref>: not found`).
    let missing = format!("{}/cache/nosuch:1", reg.addr);
    let r = build(
        &other,
        &[
            "--cache-from",
            &format!("type=registry,ref={missing}"),
            "-t",
            "x",
        ],
    )
    .ok();
    assert!(
        r.stderr.contains(&format!("ERROR: {missing}: not found")),
        "{}",
        r.stderr
    );
    other.finish();
    b.finish();
}

/// Stages that do not refer to each other are built at the same time, as
/// BuildKit builds them: here each of two stages waits for the other
/// through a FIFO in a shared cache mount, which in order would never end
/// (the reader gives up after 30 s and fails the build).
#[test]
fn independent_stages_are_built_at_once() {
    let b = start();
    let mount = "--mount=type=cache,id=rendezvous,target=/s,sharing=shared";
    let dockerfile = format!(
        "FROM busybox AS reader\n\
         RUN {mount} mkfifo /s/p 2>/dev/null; timeout 30 sh -c 'read line < /s/p && echo $line > /got'\n\
         FROM busybox AS writer\n\
         RUN {mount} mkfifo /s/p 2>/dev/null; timeout 30 sh -c 'echo from-the-writer > /s/p' && echo sent > /sent\n\
         FROM busybox\n\
         COPY --from=reader /got /got\n\
         COPY --from=writer /sent /sent\n"
    );
    let dir = context(&b, "at-once", &[("Dockerfile", dockerfile.as_str())]);
    let r = docker_in(
        &b,
        &dir,
        &["build", "--progress=plain", "-t", "at-once", "."],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for step in ["[reader 2/2] RUN", "[writer 2/2] RUN", "[stage-2 3/3] COPY"] {
        assert_eq!(vertex_end(&r.stderr, step), "DONE", "{step}: {}", r.stderr);
    }
    assert_eq!(
        b.docker(&["run", "--rm", "at-once", "cat", "/got", "/sent"])
            .ok()
            .out(),
        "from-the-writer\nsent"
    );
    b.finish();
}

#[test]
fn buildkit_dockerfile_flags_of_copy_and_add() {
    let b = start();
    let dir = context(
        &b,
        "link",
        &[
            ("a.txt", "linked\n"),
            ("Dockerfile", "FROM busybox\nCOPY --link --chmod=0640 a.txt /a.txt\nRUN stat -c %a /a.txt > /mode\n"),
        ],
    );
    docker_in(&b, &dir, &["build", "-q", "-t", "bk-link", "."]).ok();
    assert_eq!(
        b.docker(&["run", "--rm", "bk-link", "cat", "/a.txt", "/mode"])
            .ok()
            .out(),
        "linked\n640"
    );
    // --exclude leaves out what its patterns match below each copied
    // directory (`*` stays within one level, a directory pattern takes
    // what is below it); --parents keeps source paths, below a `/./`
    // pivot when there is one.
    let dir = context(
        &b,
        "exclude-parents",
        &[
            ("src/a.txt", "a"),
            ("src/b.log", "b"),
            ("src/secret/k", "k"),
            ("src/sub/c.txt", "c"),
            ("src/sub/d.log", "d"),
            ("pkg/x/mod.txt", "x"),
            ("pkg/y/mod.txt", "y"),
            ("pkg/y/other.txt", "o"),
            ("base/deep/f.txt", "f"),
            (
                "Dockerfile",
                "FROM busybox\n\
                 COPY --exclude=*.log --exclude=secret src/ /app/\n\
                 COPY --parents pkg/*/mod.txt /mods/\n\
                 COPY --parents ./base/./deep/f.txt /pivot/\n",
            ),
        ],
    );
    docker_in(&b, &dir, &["build", "-q", "-t", "bk-exclude", "."]).ok();
    assert_eq!(
        b.docker(&["run", "--rm", "bk-exclude", "sh", "-c", "find /app /mods /pivot -type f | sort"])
            .ok()
            .out(),
        "/app/a.txt\n/app/sub/c.txt\n/app/sub/d.log\n/mods/pkg/x/mod.txt\n/mods/pkg/y/mod.txt\n/pivot/deep/f.txt"
    );
    // Flags the frontend does not know name their line.
    let dir = context(
        &b,
        "unknown",
        &[("Dockerfile", "FROM busybox\nCOPY --frob=1 Dockerfile /\n")],
    );
    let r = docker_in(&b, &dir, &["build", "-q", "."]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("dockerfile parse error line 2: Unknown flag: frob"),
        "{}",
        r.stderr
    );
    // --checksum only for downloads.
    let dir = context(
        &b,
        "checksum",
        &[
            ("a.txt", "x"),
            (
                "Dockerfile",
                "FROM busybox\nADD --checksum=sha256:0000 a.txt /\n",
            ),
        ],
    );
    let r = docker_in(&b, &dir, &["build", "-q", "."]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("checksum can't be specified for non-HTTP(S) sources"),
        "{}",
        r.stderr
    );
    b.finish();
}

/// A loopback HTTP server answering `requests` GETs with `body`.
fn serve(body: &'static str, requests: usize) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..requests {
            let (mut conn, _) = listener.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req).unwrap();
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    (port, server)
}

/// git's own daemon on a loopback port, serving the repositories below
/// `base`: each connection is handed to `git daemon --inetd`.
fn serve_git(base: PathBuf) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let base = base.clone();
            std::thread::spawn(move || {
                let input = conn.try_clone().unwrap();
                let _ = std::process::Command::new("git")
                    .args(["daemon", "--inetd", "--export-all"])
                    .arg(format!("--base-path={}", base.display()))
                    .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(input)))
                    .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(conn)))
                    .status();
            });
        }
    });
    port
}

#[test]
fn add_clones_git_repositories() {
    let b = start();
    let git = |dir: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["-C", dir.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A repository with a tag v1 (README "v1", docs/) and a later commit
    // on main (README "v2").
    let src = context(
        &b,
        "git-src",
        &[("README", "v1\n"), ("docs/guide.txt", "guide\n")],
    );
    git(&src, &["init", "-q", "-b", "main"]);
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "one"]);
    git(&src, &["tag", "v1"]);
    std::fs::write(src.join("README"), "v2\n").unwrap();
    git(&src, &["commit", "-q", "-am", "two"]);
    let served = b.root.join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(
        &served,
        &["clone", "-q", "--bare", src.to_str().unwrap(), "app.git"],
    );
    let port = serve_git(served);
    let url = format!("git://127.0.0.1:{port}/app.git");
    let dockerfile = format!(
        "FROM busybox\n\
         ADD {url} /main/\n\
         ADD {url}#v1:docs /docs/\n\
         ADD --keep-git-dir=true {url}#v1 /kept/\n"
    );
    let dir = context(&b, "git-add", &[("Dockerfile", &dockerfile)]);
    docker_in(&b, &dir, &["build", "-q", "-t", "bk-git", "."]).ok();
    let shown = b
        .docker(&[
            "run",
            "--rm",
            "bk-git",
            "sh",
            "-c",
            "cat /main/README /docs/guide.txt /kept/README; test -d /kept/.git && test ! -e /main/.git && echo git-dirs-ok",
        ])
        .ok();
    assert_eq!(shown.out(), "v2\nguide\nv1\ngit-dirs-ok");
    // A ref the repository lacks fails the step with the remote named.
    let dir = context(
        &b,
        "git-bad",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD {url}#nosuch /x/\n"),
        )],
    );
    let r = docker_in(&b, &dir, &["build", "-q", "."]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&format!("failed to fetch remote {url}")),
        "{}",
        r.stderr
    );
    b.finish();
}

#[test]
fn add_checksum_verifies_downloads() {
    let b = start();
    let body = "downloaded body\n";
    let good = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    };
    let (port, server) = serve(body, 2);
    let dockerfile = |sum: &str| {
        format!("FROM busybox\nADD --checksum=sha256:{sum} http://127.0.0.1:{port}/f.txt /f.txt\n")
    };
    let dir = context(&b, "good", &[("Dockerfile", &dockerfile(&good))]);
    docker_in(&b, &dir, &["build", "-q", "-t", "bk-sum", "."]).ok();
    assert_eq!(
        b.docker(&["run", "--rm", "bk-sum", "cat", "/f.txt"])
            .ok()
            .out(),
        body.trim_end()
    );
    let bad = "0".repeat(64);
    let dir = context(&b, "bad", &[("Dockerfile", &dockerfile(&bad))]);
    let r = docker_in(&b, &dir, &["build", "-q", "."]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("digest mismatch sha256:{good}: sha256:{bad}")),
        "{}",
        r.stderr
    );
    server.join().unwrap();
    b.finish();
}

#[test]
fn named_build_contexts_of_directories_and_images() {
    let b = start();
    let extra = context(&b, "extra", &[("hello.txt", "from extra\n")]);
    let dir = context(
        &b,
        "named",
        &[(
            "Dockerfile",
            "FROM base\nCOPY --from=extra hello.txt /hello.txt\n",
        )],
    );
    let extra_arg = format!("extra={}", extra.display());
    docker_in(
        &b,
        &dir,
        &[
            "buildx",
            "build",
            "-q",
            "--load",
            "-t",
            "bk-named",
            "--build-context",
            &extra_arg,
            "--build-context",
            "base=docker-image://busybox:latest",
            ".",
        ],
    )
    .ok();
    assert_eq!(
        b.docker(&["run", "--rm", "bk-named", "cat", "/hello.txt"])
            .ok()
            .out(),
        "from extra"
    );
    // Other kinds are refused by name.
    let r = docker_in(
        &b,
        &dir,
        &[
            "buildx",
            "build",
            "-q",
            "--build-context",
            "extra=https://127.0.0.1:9/x.git",
            ".",
        ],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("build context extra="), "{}", r.stderr);
    b.finish();
}

#[test]
fn a_client_gone_mid_build_leaves_nothing_behind() {
    let b = start();
    // The step says it started through its cache mount (a host directory)
    // and waits there for the test's go-ahead.
    let dir = context(
        &b,
        "gone",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/sync,id=gone-sync sh -c 'touch /sync/started; while [ ! -f /sync/go ]; do sleep 0.05; done; rm /sync/go /sync/started'\n",
        )],
    );
    let mut client = b
        .docker_cmd(&["build", "--progress=plain", "."])
        .env_remove("DOCKER_BUILDKIT")
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let caches = b.data_root().join("build-cache-mounts");
    let started = || {
        std::fs::read_dir(&caches)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("started"))
            .find(|p| p.exists())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let marker = loop {
        if let Some(m) = started() {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The client goes away (as with Ctrl-C, but without a goodbye).
    client.kill().unwrap();
    client.wait().unwrap();
    std::fs::write(marker.with_file_name("go"), "").unwrap();
    // The engine finishes the step and cleans up after itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let ps = b.docker(&["ps", "-aq"]).ok();
        let mounted = berth_compat_tests::mounts_below(&b.data_root().join("builds"));
        if ps.out().is_empty() && mounted.is_empty() && !marker.exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: containers {:?}, mounts {mounted:?}",
            ps.out()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    b.finish();
}
