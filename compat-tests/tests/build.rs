//! `docker build` through the real docker CLI with the legacy builder
//! (DOCKER_BUILDKIT=0): every instruction, the options, multi-stage
//! builds, the cache (also across an engine restart), docker compose, and
//! the ways a Dockerfile or a context can be wrong or hostile.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_compat_tests::{Berth, Run};

/// A build context directory with the given files.
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

/// `docker build ARGS` run in `dir` with the legacy builder.
fn build(b: &Berth, dir: &Path, args: &[&str]) -> Run {
    build_stdin(b, dir, args, None)
}

fn build_stdin(b: &Berth, dir: &Path, args: &[&str], input: Option<&str>) -> Run {
    let mut cmd = b.docker_cmd(&[&["build"], args].concat());
    cmd.env("DOCKER_BUILDKIT", "0").current_dir(dir);
    let out = match input {
        None => cmd.stdin(Stdio::null()).output().unwrap(),
        Some(text) => {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn inspect(b: &Berth, image: &str, format: &str) -> String {
    b.docker(&["image", "inspect", "-f", format, image])
        .ok()
        .out()
        .to_string()
}

fn run_in(b: &Berth, image: &str, cmd: &str) -> String {
    b.docker(&[
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        image,
        "-c",
        cmd,
    ])
    .ok()
    .out()
    .to_string()
}

/// A tar holding `files` (name, content).
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut ar = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o640);
        h.set_uid(1234);
        h.set_gid(1234);
        h.set_cksum();
        ar.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    ar.into_inner().unwrap()
}

#[test]
fn every_instruction_shapes_the_image() {
    let b = Berth::start();
    b.load_busybox();
    let dir = context(
        &b,
        "all",
        &[
            ("files/a.txt", "alpha\n"),
            ("files/b.txt", "beta\n"),
            ("files/sub/c.md", "gamma\n"),
            ("notes.md", "notes\n"),
        ],
    );
    std::fs::write(
        dir.join("bundle.tar"),
        tar_of(&[("inside/x.txt", "from the tar\n")]),
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        r#"# a comment before everything
ARG BASE=busybox
FROM ${BASE} AS base
LABEL org.example.team="core team" version=1
ENV GREETING=hello \
    TARGET="the world"
ARG SUFFIX=!
# comments inside continuations are dropped
RUN echo "$GREETING, $TARGET$SUFFIX" > /greeting \
    # like this one
    && mkdir -p /srv/app
RUN ["/bin/sh", "-c", "echo exec-form > /exec-form"]
WORKDIR /srv
WORKDIR app
COPY files/ /srv/app/files/
COPY --chown=nobody --chmod=600 files/*.txt ./owned/
COPY notes.md .
ADD bundle.tar /unpacked/
RUN <<EOF
echo line one > /heredoc
echo line two >> /heredoc
EOF
COPY <<EOT /srv/app/generated.txt
greeting is $GREETING
EOT
EXPOSE 8080 53/udp
VOLUME ["/data"]
USER nobody
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD cat /greeting
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting"]
"#,
    )
    .unwrap();
    let r = build(&b, &dir, &["-t", "kitchen:1", "-t", "kitchen:latest", "."]).ok();
    assert!(
        r.stdout.contains("Step 1/23 : FROM ${BASE} AS base"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Step 23/23 : CMD [\"cat /greeting\"]"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(" ---> Running in "), "{}", r.stdout);
    assert!(
        r.stdout.contains("Successfully tagged kitchen:1"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Successfully tagged kitchen:latest"),
        "{}",
        r.stdout
    );
    let built = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap()
        .to_string();
    assert!(inspect(&b, "kitchen:1", "{{.Id}}").contains(&built));

    // The config every instruction set.
    assert_eq!(
        b.docker(&["run", "--rm", "kitchen:1"]).ok().out(),
        "hello, the world!"
    );
    assert_eq!(
        inspect(&b, "kitchen:1", "{{.Config.WorkingDir}}"),
        "/srv/app"
    );
    assert_eq!(inspect(&b, "kitchen:1", "{{.Config.User}}"), "nobody");
    assert_eq!(
        inspect(&b, "kitchen:1", "{{.Config.StopSignal}}"),
        "SIGUSR1"
    );
    assert_eq!(
        inspect(
            &b,
            "kitchen:1",
            "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"
        ),
        r#"["/bin/sh","-c"] ["cat /greeting"]"#
    );
    assert_eq!(
        inspect(&b, "kitchen:1", "{{json .Config.ExposedPorts}}"),
        r#"{"53/udp":{},"8080/tcp":{}}"#
    );
    assert_eq!(
        inspect(&b, "kitchen:1", "{{json .Config.Volumes}}"),
        r#"{"/data":{}}"#
    );
    assert_eq!(
        inspect(
            &b,
            "kitchen:1",
            "{{index .Config.Labels \"org.example.team\"}}"
        ),
        "core team"
    );
    assert_eq!(
        inspect(&b, "kitchen:1", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD-SHELL","cat /greeting"],"Interval":30000000000,"Timeout":5000000000,"Retries":2}"#
    );
    assert_eq!(
        inspect(&b, "kitchen:1", "{{json .Config.Shell}}"),
        r#"["/bin/sh","-ec"]"#
    );
    assert_eq!(
        inspect(&b, "kitchen:1", "{{json .Config.OnBuild}}"),
        r#"["RUN echo triggered > /tmp/onbuild"]"#
    );
    let env = inspect(&b, "kitchen:1", "{{json .Config.Env}}");
    assert!(
        env.contains(r#""GREETING=hello""#) && env.contains(r#""TARGET=the world""#),
        "{env}"
    );
    assert!(
        !env.contains("SUFFIX"),
        "ARG values stay out of the image: {env}"
    );
    // One history entry per instruction after FROM, on top of busybox's.
    let base_history = b
        .docker(&["history", "-q", "busybox"])
        .ok()
        .stdout
        .lines()
        .count();
    let entries = b
        .docker(&["history", "--format", "{{.ID}}", "kitchen:1"])
        .ok();
    assert_eq!(
        entries.stdout.lines().count(),
        base_history + 22,
        "{}",
        entries.stdout
    );
    let history = b
        .docker(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "kitchen:1",
        ])
        .ok();
    assert!(
        history.stdout.contains("|1 SUFFIX=! /bin/sh -c echo"),
        "{}",
        history.stdout
    );

    // The files.
    let files = run_in(
        &b,
        "kitchen:1",
        "cat /exec-form /heredoc files/a.txt files/sub/c.md notes.md generated.txt /unpacked/inside/x.txt; \
         stat -c '%n %u %a' owned/a.txt owned/b.txt /unpacked/inside/x.txt; ls owned",
    );
    assert_eq!(
        files,
        "exec-form\nline one\nline two\nalpha\ngamma\nnotes\ngreeting is hello\nfrom the tar\n\
         owned/a.txt 65534 600\nowned/b.txt 65534 600\n/unpacked/inside/x.txt 1234 640\na.txt\nb.txt"
    );

    // ONBUILD fires in an image built FROM this one.
    let child = context(&b, "child", &[("Dockerfile", "FROM kitchen:1\nRUN true\n")]);
    let r = build(&b, &child, &["-t", "child", "."]).ok();
    assert!(
        r.stdout.contains("# Executing 1 build trigger"),
        "{}",
        r.stdout
    );
    assert_eq!(run_in(&b, "child", "cat /tmp/onbuild"), "triggered");
    assert_eq!(inspect(&b, "child", "{{json .Config.OnBuild}}"), "null");

    // Intermediate images hide from `docker images` but not from -a, and
    // go with the image built on them.
    let top = b.docker(&["images", "-q"]).ok().stdout.lines().count();
    let all = b.docker(&["images", "-aq"]).ok().stdout.lines().count();
    assert!(all > top + 20, "{top} images, {all} with intermediates");
    b.docker(&["rmi", "child"]).ok();
    assert!(b.docker(&["images", "-aq"]).ok().stdout.lines().count() < all);
    b.finish();
}

#[test]
fn escape_directive_and_stdin_dockerfiles() {
    let b = Berth::start();
    b.load_busybox();
    let dir = context(&b, "esc", &[("data.txt", "from the context\n")]);
    // `docker build -f - .`: the Dockerfile from stdin, the context from dir.
    let df = "# escape=`\nFROM busybox\nRUN echo one `\n    two > /out\nCOPY data.txt /\n";
    build_stdin(&b, &dir, &["-t", "esc", "-f", "-", "."], Some(df)).ok();
    assert_eq!(
        run_in(&b, "esc", "cat /out /data.txt"),
        "one two\nfrom the context"
    );
    // `docker build -`: a bare Dockerfile and no context at all.
    let r = build_stdin(
        &b,
        &dir,
        &["-t", "bare", "-"],
        Some("FROM busybox\nRUN echo bare > /b\n"),
    )
    .ok();
    assert!(
        r.stdout.contains("Successfully tagged bare:latest"),
        "{}",
        r.stdout
    );
    assert_eq!(run_in(&b, "bare", "cat /b"), "bare");
    // -f naming a file outside the context directory.
    let outside = b.root.join("elsewhere.Dockerfile");
    std::fs::write(&outside, "FROM busybox\nCOPY data.txt /copied\n").unwrap();
    build(
        &b,
        &dir,
        &["-t", "outside", "-f", outside.to_str().unwrap(), "."],
    )
    .ok();
    assert_eq!(run_in(&b, "outside", "cat /copied"), "from the context");
    // The syntax directive is ignored with a warning.
    let r = build_stdin(
        &b,
        &dir,
        &["-"],
        Some("# syntax=docker/dockerfile:1\nFROM busybox\n"),
    )
    .ok();
    assert!(r.stdout.contains("syntax directive"), "{}", r.stdout);
    b.finish();
}

#[test]
fn multi_stage_builds_and_targets() {
    let b = Berth::start();
    b.load_busybox();
    let dir = context(
        &b,
        "multi",
        &[(
            "Dockerfile",
            "FROM busybox AS builder\nRUN mkdir /out && echo built > /out/artifact\n\
             FROM busybox AS tester\nRUN echo tested > /tested\n\
             FROM scratch\nCOPY --from=builder /out/artifact /artifact\n\
             COPY --from=1 /tested /tested\nCOPY --from=busybox /bin/busybox /busybox\n",
        )],
    );
    build(&b, &dir, &["-t", "multi", "."]).ok();
    // The final image holds only what it copied: three files, three layers.
    assert_eq!(inspect(&b, "multi", "{{len .RootFS.Layers}}"), "3");
    b.docker(&["create", "--name", "mm", "multi", "/busybox", "true"])
        .ok();
    let out = b.root.join("multi.tar");
    b.docker(&["export", "-o", out.to_str().unwrap(), "mm"])
        .ok();
    let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&out).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .filter(|n| {
            !n.starts_with("dev")
                && !n.starts_with("proc")
                && !n.starts_with("sys")
                && !n.starts_with("etc")
        })
        .collect();
    names.sort();
    assert_eq!(names, ["artifact", "busybox", "tested"]);
    // --target stops at the named stage.
    let r = build(&b, &dir, &["--target", "builder", "-t", "stage1", "."]).ok();
    assert!(r.stdout.contains("Step 2/2 :"), "{}", r.stdout);
    assert_eq!(run_in(&b, "stage1", "cat /out/artifact"), "built");
    let r = build(&b, &dir, &["--target", "nope", "."]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("failed to reach build target nope in Dockerfile"),
        "{}",
        r.stderr
    );
    b.finish();
}

#[test]
fn options_args_labels_ignore_quiet_and_network() {
    let b = Berth::start();
    b.load_busybox();
    let dir = context(
        &b,
        "opts",
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG FLAVOR=plain\nARG UNUSED_DEFAULT\nRUN echo \"$FLAVOR $HTTP_PROXY\" > /flavor\nCOPY . /ctx/\nRUN cat /proc/net/dev | wc -l > /netlines; readlink /proc/self/ns/net > /netns\nRUN grep extra.test /etc/hosts > /hostsline; echo to-stderr >&2\n",
            ),
            (".dockerignore", "*.log\n!keep.log\n**/*.tmp\nsecret/\n"),
            ("app.log", "no"),
            ("keep.log", "yes"),
            ("deep/er/x.tmp", "no"),
            ("deep/er/x.txt", "yes"),
            ("secret/key", "no"),
        ],
    );
    let iid = b.root.join("iid");
    let r = build(
        &b,
        &dir,
        &[
            "--build-arg",
            "FLAVOR=spicy",
            "--build-arg",
            "HTTP_PROXY=http://127.0.0.1:3128",
            "--build-arg",
            "NOBODY_USES_ME=1",
            "--label",
            "built.by=test",
            "--add-host",
            "extra.test:127.0.0.9",
            "--iidfile",
            iid.to_str().unwrap(),
            "-t",
            "opts",
            ".",
        ],
    )
    .ok();
    assert!(
        r.stdout
            .contains("[Warning] One or more build-args [NOBODY_USES_ME] were not consumed"),
        "{}",
        r.stdout
    );
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(inspect(&b, "opts", "{{.Id}}"), id.trim());
    assert_eq!(
        inspect(&b, "opts", "{{index .Config.Labels \"built.by\"}}"),
        "test"
    );
    assert_eq!(
        run_in(&b, "opts", "cat /flavor"),
        "spicy http://127.0.0.1:3128"
    );
    // The proxy arg reached RUN but not the history.
    let history = b.docker(&["history", "--no-trunc", "opts"]).ok().stdout;
    assert!(
        history.contains("FLAVOR=spicy") && !history.contains("3128"),
        "{history}"
    );
    assert_eq!(
        run_in(
            &b,
            "opts",
            "cd /ctx && find . -type f | sort | tr '\\n' ' '"
        ),
        "./.dockerignore ./Dockerfile ./deep/er/x.txt ./keep.log"
    );
    // A RUN step's stderr comes in red, as from dockerd's classic builder.
    assert!(
        r.stdout.contains("\u{1b}[91mto-stderr\n\u{1b}[0m"),
        "{}",
        r.stdout
    );
    // --add-host reaches RUN steps' /etc/hosts.
    assert_eq!(
        run_in(&b, "opts", "cat /hostsline"),
        "127.0.0.9\textra.test"
    );
    // RUN is on the default bridge (two header lines, lo and eth0)...
    assert_eq!(run_in(&b, "opts", "cat /netlines"), "4");
    // ... or on none with --network none (loopback only).
    build(
        &b,
        &dir,
        &["--network", "none", "--no-cache", "-t", "nonet", "."],
    )
    .ok();
    assert_eq!(run_in(&b, "nonet", "cat /netlines"), "3");
    // --cache-from: only the named images' steps are cache hits.
    let r = build(
        &b,
        &dir,
        &["--cache-from", "nosuchimage", "-t", "again", "."],
    )
    .ok();
    assert!(!r.stdout.contains("Using cache"), "{}", r.stdout);
    let r = build(&b, &dir, &["--cache-from", "again", "-t", "again", "."]).ok();
    assert!(r.stdout.contains("Using cache"), "{}", r.stdout);
    // --network host: the host's interfaces.
    build(
        &b,
        &dir,
        &["--network", "host", "--no-cache", "-t", "hostnet", "."],
    )
    .ok();
    // The host's own network namespace (counting its interfaces would race
    // with other tests' containers coming and going).
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        run_in(&b, "hostnet", "cat /netns"),
        host_ns.display().to_string()
    );
    // -q prints the id only.
    let r = build(&b, &dir, &["-q", "."]).ok();
    assert!(
        r.out().starts_with("sha256:") && !r.out().contains("Step"),
        "{}",
        r.out()
    );
    assert_eq!(inspect(&b, r.out(), "{{.Id}}"), r.out());
    b.finish();
}

#[test]
fn a_dangling_builds_steps_go_with_it_in_one_prune() {
    let b = Berth::start();
    b.load_busybox();
    let count = |b: &Berth| b.docker(&["images", "-a", "-q"]).ok().out().lines().count();
    let dir = context(
        &b,
        "chain",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo 1 > /a\nRUN echo 2 > /b\nENV X=1\n",
        )],
    );
    build(&b, &dir, &["-t", "chain", "."]).ok();
    let dir = context(
        &b,
        "chain2",
        &[("Dockerfile", "FROM busybox\nRUN echo 3 > /a\n")],
    );
    build(&b, &dir, &["-t", "chain", "."]).ok();
    // busybox, the old chain (3 step images, now dangling), the new one.
    assert_eq!(count(&b), 5);
    // As dockerd: one prune takes the dangling image and its unnamed steps.
    b.docker(&["image", "prune", "-f"]).ok();
    assert_eq!(count(&b), 2);
    b.finish();
}

#[test]
fn cache_hits_misses_restarts_and_prune() {
    let mut b = Berth::start();
    b.load_busybox();
    let dir = context(
        &b,
        "cache",
        &[
            (
                "Dockerfile",
                "FROM busybox\nRUN echo one > /one\nCOPY src.txt /\nRUN cat /src.txt > /copy\n",
            ),
            ("src.txt", "version 1\n"),
        ],
    );
    let first = build(&b, &dir, &["-t", "cached", "."]).ok();
    assert_eq!(
        first.stdout.matches("Running in").count(),
        2,
        "{}",
        first.stdout
    );
    assert!(!first.stdout.contains("Using cache"));
    let df = b
        .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok();
    assert!(df.stdout.contains("Build Cache 3"), "{}", df.stdout);

    // Nothing changed: every step from the cache, no container started.
    let now = || {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
    };
    let before = now();
    let again = build(&b, &dir, &["-t", "cached", "."]).ok();
    let after = now();
    assert_eq!(
        again.stdout.matches("Using cache").count(),
        3,
        "{}",
        again.stdout
    );
    assert!(!again.stdout.contains("Running in"), "{}", again.stdout);
    let events = b
        .docker(&[
            "events",
            "--since",
            &before,
            "--until",
            &after,
            "--filter",
            "type=container",
        ])
        .ok();
    assert_eq!(events.out(), "", "containers during a cached build");
    // (The same query does see the first build's containers.)
    let first_events = b
        .docker(&[
            "events",
            "--since",
            "0",
            "--until",
            &before,
            "--filter",
            "event=start",
        ])
        .ok();
    assert_eq!(
        first_events.stdout.lines().count(),
        2,
        "{}",
        first_events.stdout
    );
    assert_eq!(
        inspect(&b, "cached", "{{.Id}}"),
        first
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Successfully built "))
            .map(|s| inspect(&b, s, "{{.Id}}"))
            .unwrap()
    );

    // The cache is on disk: an engine restart keeps it.
    b.kill_berthd();
    b.spawn_berthd();
    let after_restart = build(&b, &dir, &["."]).ok();
    assert_eq!(
        after_restart.stdout.matches("Using cache").count(),
        3,
        "{}",
        after_restart.stdout
    );

    // A changed COPY source rebuilds from that step on.
    std::fs::write(dir.join("src.txt"), "version 2\n").unwrap();
    let changed = build(&b, &dir, &["-t", "cached", "."]).ok();
    assert_eq!(
        changed.stdout.matches("Using cache").count(),
        1,
        "{}",
        changed.stdout
    );
    assert_eq!(
        changed.stdout.matches("Running in").count(),
        1,
        "{}",
        changed.stdout
    );
    assert_eq!(run_in(&b, "cached", "cat /copy"), "version 2");
    // Only the mode changed: still a different source.
    std::fs::set_permissions(
        dir.join("src.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mode = build(&b, &dir, &["."]).ok();
    assert_eq!(
        mode.stdout.matches("Using cache").count(),
        1,
        "{}",
        mode.stdout
    );

    // --no-cache uses none.
    let none = build(&b, &dir, &["--no-cache", "."]).ok();
    assert!(!none.stdout.contains("Using cache"), "{}", none.stdout);

    // builder prune empties the cache (the CLI's own command: with buildx
    // installed and BuildKit not turned off it would be buildx's prune,
    // tested in buildkit.rs).
    let out = b
        .docker_cmd(&["builder", "prune", "-f"])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let pruned = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
    .ok();
    assert!(
        pruned.stdout.contains("Total reclaimed space"),
        "{}",
        pruned.stdout
    );
    let df = b
        .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok();
    assert!(df.stdout.contains("Build Cache 0"), "{}", df.stdout);
    let cold = build(&b, &dir, &["."]).ok();
    assert!(!cold.stdout.contains("Using cache"), "{}", cold.stdout);
    b.finish();
}

#[test]
fn failures_are_reported_like_docker() {
    let b = Berth::start();
    b.load_busybox();
    let dir = context(&b, "bad", &[("ok.txt", "ok\n")]);
    let bad = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        build(&b, &dir, &["-f", name, "."])
    };
    let r = bad("Unknown", "FROM busybox\nRUN true\nBOGUS stuff\n");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("dockerfile parse error line 3: unknown instruction: BOGUS"),
        "{}",
        r.stderr
    );

    let r = bad("Fails", "FROM busybox\nRUN echo partial output; exit 7\n");
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        r.stdout
            .contains("Step 2/2 : RUN echo partial output; exit 7"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("partial output"), "{}", r.stdout);
    assert!(
        r.stderr.contains(
            "The command '/bin/sh -c echo partial output; exit 7' returned a non-zero code: 7"
        ),
        "{}",
        r.stderr
    );
    // Docker keeps the failed step's container unless --force-rm.
    assert_eq!(b.docker(&["ps", "-aq"]).ok().stdout.lines().count(), 1);
    let r = build(&b, &dir, &["--force-rm", "-f", "Fails", "."]);
    assert_eq!(r.code, 7);
    assert_eq!(b.docker(&["ps", "-aq"]).ok().stdout.lines().count(), 1);
    // --rm=false keeps successful steps' containers too.
    bad("Keeps", "FROM busybox\nRUN true\n");
    build(&b, &dir, &["--rm=false", "--no-cache", "-f", "Keeps", "."]).ok();
    assert_eq!(b.docker(&["ps", "-aq"]).ok().stdout.lines().count(), 2);

    let r = bad("Missing", "FROM busybox\nCOPY nothere.txt /\n");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("COPY failed: file not found in build context or excluded by .dockerignore: stat nothere.txt: file does not exist"), "{}", r.stderr);
    let r = bad("Outside", "FROM busybox\nCOPY ../../etc/passwd /\n");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("forbidden path outside the build context"),
        "{}",
        r.stderr
    );
    let r = bad("Many", "FROM busybox\nCOPY ok.txt Many /dest\n");
    assert!(
        r.stderr
            .contains("the destination must be a directory and end with a /"),
        "{}",
        r.stderr
    );
    // ADD of a URL nobody serves: a clear error (a closed port on loopback).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = bad(
        "Url",
        &format!("FROM busybox\nADD http://127.0.0.1:{port}/file.txt /\n"),
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&format!(
            "ADD failed: failed to GET http://127.0.0.1:{port}/file.txt"
        )),
        "{}",
        r.stderr
    );
    let r = build(&b, &dir, &["-f", "NoSuchDockerfile", "."]);
    assert_ne!(r.code, 0);
    let r = bad(
        "Flag",
        "FROM busybox\nRUN --mount=type=cache,target=/x true\n",
    );
    assert!(r.stderr.contains("requires BuildKit"), "{}", r.stderr);
    let r = bad("Platform", "FROM --platform=linux/s390x busybox\n");
    assert!(r.stderr.contains("not supported"), "{}", r.stderr);
    let r = build(&b, &dir, &["--platform", "linux/s390x", "-f", "Keeps", "."]);
    assert!(r.stderr.contains("not supported"), "{}", r.stderr);
    b.finish();
}

/// A raw tar: (name, kind, data, link target), names written as given.
fn raw_tar(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut ar = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        // Raw names: the tar crate would refuse `..` and absolute ones.
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_cksum();
        ar.append(&h, *data).unwrap();
    }
    ar.into_inner().unwrap()
}

#[test]
fn hostile_contexts_stay_inside_the_build() {
    use tar::EntryType::{Regular, Symlink};
    let b = Berth::start();
    b.load_busybox();
    let victim = b.root.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("secret"), "host secret\n").unwrap();
    let v = victim.display().to_string();
    let df: &[u8] = b"FROM busybox\nCOPY secretlink /got-link\nCOPY escape/ /got-dir/\n";

    // Names that climb out of the context or are absolute: refused with a
    // 400 before anything runs, and nothing lands outside.
    let climbing = format!("../../..{v}/planted");
    let absolute = format!("{v}/planted-abs");
    let body = raw_tar(&[
        ("Dockerfile", Regular, df, ""),
        (&absolute, Regular, b"x", ""),
        (&climbing, Regular, b"x", ""),
    ]);
    let resp = b.api("POST", "/v1.50/build?t=hostile", Some(&body));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("escapes"), "{}", resp.text());
    assert!(!victim.join("planted").exists());
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);

    // Symlinks pointing out of the context resolve inside it: COPY finds
    // the context's own decoy at that path, never the host's file.
    let decoy = format!("{}/secret", v.trim_start_matches('/'));
    let body = raw_tar(&[
        ("Dockerfile", Regular, df, ""),
        (&decoy, Regular, b"context decoy\n", ""),
        ("escape", Symlink, b"", &v),
        (
            "secretlink",
            Symlink,
            b"",
            &format!("../../../../../..{v}/secret"),
        ),
    ]);
    let resp = b.api("POST", "/v1.50/build?t=hostile", Some(&body));
    assert_eq!(resp.status, 200);
    assert!(!resp.text().contains("errorDetail"), "{}", resp.text());
    assert_eq!(
        run_in(&b, "hostile", "cat /got-link /got-dir/secret"),
        "context decoy\ncontext decoy"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("secret")).unwrap(),
        "host secret\n"
    );
    b.finish();
}

#[test]
fn docker_compose_builds_through_the_legacy_builder() {
    let b = Berth::start();
    b.load_busybox();
    if b.docker(&["compose", "version"]).code != 0 {
        panic!("docker compose v2 is not installed: run contrib/setup.sh --deps");
    }
    let dir = context(
        &b,
        "proj",
        &[
            ("compose.yaml", "services:\n  app:\n    build:\n      context: .\n      args:\n        GREETING: hello-compose\n    image: proj-app:latest\n"),
            ("Dockerfile", "FROM busybox\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n"),
        ],
    );
    let out = b
        .docker_cmd(&["compose", "build"])
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        b.docker(&["run", "--rm", "proj-app"]).ok().out(),
        "hello-compose"
    );
    assert_eq!(
        inspect(
            &b,
            "proj-app",
            "{{index .Config.Labels \"com.docker.compose.image.builder\"}}"
        ),
        "classic"
    );
    b.finish();
}

#[test]
fn from_pulls_missing_bases_and_pull_refreshes() {
    let reg = berth_compat_tests::registry::Registry::start();
    let b = Berth::start();
    b.load_busybox();
    let base = format!("{}/base:1", reg.addr);
    b.docker(&["tag", "busybox", &base]).ok();
    b.docker(&["push", &base]).ok();
    b.docker(&["rmi", &base]).ok();
    let dir = context(
        &b,
        "pull",
        &[(
            "Dockerfile",
            &format!("FROM {base}\nRUN echo pulled > /p\n"),
        )],
    );
    // Not here: the build pulls it, with the pull's progress in its output.
    let r = build(&b, &dir, &["-t", "pulled", "."]).ok();
    assert!(r.stdout.contains("Pulling from base"), "{}", r.stdout);
    assert_eq!(run_in(&b, "pulled", "cat /p"), "pulled");
    // Here: used as it is, unless --pull.
    let r = build(&b, &dir, &["."]).ok();
    assert!(!r.stdout.contains("Pulling from"), "{}", r.stdout);
    let r = build(&b, &dir, &["--pull", "."]).ok();
    assert!(r.stdout.contains("Pulling from base"), "{}", r.stdout);
    // A base no registry has: the registry's answer, and no image.
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {}/nothing:1\n", reg.addr),
    )
    .unwrap();
    let r = build(&b, &dir, &["."]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    b.finish();
}

#[test]
fn add_downloads_urls() {
    use std::io::{Read, Write};
    let b = Berth::start();
    b.load_busybox();
    // A one-request HTTP server on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = [0u8; 4096];
        let n = conn.read(&mut req).unwrap();
        let body = "downloaded body\n";
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&req[..n]).into_owned()
    });
    let dir = context(
        &b,
        "url",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD http://127.0.0.1:{port}/files/remote.txt /srv/\n"),
        )],
    );
    build(&b, &dir, &["-t", "url", "."]).ok();
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /files/remote.txt HTTP/1.1"),
        "{request}"
    );
    assert_eq!(
        run_in(&b, "url", "cat /srv/remote.txt; stat -c %a /srv/remote.txt"),
        "downloaded body\n600"
    );
    b.finish();
}

/// Peak resident memory of a process, from /proc (VmHWM, in KiB).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn large_contexts_go_to_disk_not_memory() {
    let b = Berth::start();
    b.load_busybox();
    let dir = context(
        &b,
        "large",
        &[("Dockerfile", "FROM busybox\nCOPY big.bin /big.bin\n")],
    );
    // 256 MiB of data the engine must receive, unpack and copy.
    let chunk = vec![7u8; 1 << 20];
    let mut f = std::fs::File::create(dir.join("big.bin")).unwrap();
    for _ in 0..256 {
        std::io::Write::write_all(&mut f, &chunk).unwrap();
    }
    drop(f);
    build(&b, &dir, &["-t", "large", "."]).ok();
    assert_eq!(
        run_in(&b, "large", "wc -c < /big.bin"),
        (256u64 << 20).to_string()
    );
    let peak = peak_rss_kib(b.berthd_pid());
    assert!(
        peak < 128 * 1024,
        "berthd peaked at {peak} KiB for a 256 MiB context"
    );
    b.finish();
}
