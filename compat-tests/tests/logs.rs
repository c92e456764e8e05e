//! `docker logs` beyond the basics: rotation (`--log-opt max-size` and
//! `max-file`) with `--tail` and `--follow` across rotated files,
//! `--details`, stdout and stderr kept apart, and log options Docker
//! refuses.

use berth_compat_tests::Berth;

/// Asserts `text` is `line-A` … `line-B` without a gap and returns (A, B).
fn consecutive(text: &str) -> (u32, u32) {
    let nums: Vec<u32> = text
        .lines()
        .map(|l| {
            l.strip_prefix("line-")
                .unwrap_or_else(|| panic!("{l:?}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert!(!nums.is_empty());
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap in {nums:?}");
    }
    (nums[0], *nums.last().unwrap())
}

/// Follows, from the start, a container that writes 120 lines while its
/// log rotates under `log_opts`: nothing lost, nothing twice.
fn followed_across_rotations(b: &Berth, name: &str, log_opts: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend(log_opts);
    args.extend([
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 120); do echo line-$i; sleep 0.01; done",
    ]);
    b.docker(&args).ok();
    let followed = b.docker(&["logs", "-f", name]).ok();
    assert_eq!(consecutive(&followed.stdout).1, 120);
}

#[test]
fn rotated_logs_are_read_in_order_and_followed_across_rotations() {
    let b = Berth::start();
    b.load_busybox();
    let rot = ["--log-opt", "max-size=1k", "--log-opt", "max-file=3"];
    let mut args = vec!["run", "--name", "burst"];
    args.extend(rot);
    args.extend([
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 300); do echo line-$i; done",
    ]);
    b.docker(&args).ok();
    let id = b
        .docker(&["inspect", "-f", "{{.Id}}", "burst"])
        .ok()
        .out()
        .to_string();
    let dir = b.data_root().join("containers").join(&id);
    let log = |suffix: &str| dir.join(format!("{id}-json.log{suffix}"));
    assert!(
        log(".1").exists() && log(".2").exists() && !log(".3").exists(),
        "rotation keeps 3 files in all"
    );
    assert!(std::fs::metadata(log("")).unwrap().len() < 2048);
    let all = b.docker(&["logs", "burst"]).ok();
    let (first, last) = consecutive(&all.stdout);
    assert!(first > 1 && last == 300, "{first}..{last}");
    assert_eq!(
        consecutive(&b.docker(&["logs", "--tail", "20", "burst"]).ok().stdout),
        (281, 300)
    );

    followed_across_rotations(&b, "slow", &rot);
    b.docker(&["rm", "burst", "slow"]).ok();
    b.finish();
}

#[test]
fn details_streams_and_refused_options() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "--name",
        "detailed",
        "--label",
        "team=blue",
        "--log-opt",
        "labels=team",
        "-e",
        "TIER=web",
        "--log-opt",
        "env=TIER",
        "busybox",
        "sh",
        "-c",
        "echo o1; echo e1 >&2; echo o2; echo o3; echo e2 >&2",
    ])
    .ok();
    let both = b.docker(&["logs", "detailed"]).ok();
    assert_eq!(both.stdout, "o1\no2\no3\n");
    assert_eq!(both.stderr, "e1\ne2\n");
    let details = b.docker(&["logs", "--details", "detailed"]).ok();
    assert_eq!(
        details.stdout,
        "TIER=web,team=blue o1\nTIER=web,team=blue o2\nTIER=web,team=blue o3\n"
    );
    // The last entry, on its stream, with its time. Entries of two streams
    // written a moment apart may be logged in either order (two pipes, as
    // with dockerd's two copiers), so this output uses one stream.
    b.docker(&[
        "run",
        "--name",
        "stamped",
        "busybox",
        "sh",
        "-c",
        "echo e1 >&2; echo e2 >&2",
    ])
    .ok();
    let ts = b.docker(&["logs", "-t", "--tail", "1", "stamped"]).ok();
    assert_eq!(ts.stdout, "");
    let (stamp, text) = ts.stderr.trim_end().split_once(' ').unwrap();
    assert!(stamp.ends_with('Z') && stamp.len() == 30, "{stamp}");
    assert_eq!(text, "e2");

    let bad = b.docker(&["run", "--log-opt", "bogus=1", "busybox", "true"]);
    assert!(
        bad.stderr
            .contains("unknown log opt 'bogus' for json-file log driver"),
        "{}",
        bad.stderr
    );
    let size = b.docker(&["run", "--log-opt", "max-size=lots", "busybox", "true"]);
    assert!(
        size.stderr.contains("invalid max-size: lots"),
        "{}",
        size.stderr
    );
    b.docker(&["rm", "detailed"]).ok();
    b.finish();
}

#[test]
fn the_local_driver_keeps_streams_times_tail_follow_and_rotation() {
    let b = Berth::start();
    b.load_busybox();
    let local = [
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
    ];
    let mut args = vec!["run", "--name", "loc"];
    args.extend(local);
    args.extend([
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 1000); do echo line-$i; done; echo oops >&2",
    ]);
    b.docker(&args).ok();
    let seen = b
        .docker(&[
            "inspect",
            "-f",
            "{{.Id}} {{.HostConfig.LogConfig.Type}} [{{.LogPath}}]",
            "loc",
        ])
        .ok();
    let (id, rest) = seen.out().split_once(' ').unwrap();
    assert_eq!(rest, "local []");
    // Docker's place for the local driver's files, rotated like json-file.
    let log = b
        .data_root()
        .join("containers")
        .join(id)
        .join("local-logs/container.log");
    let rotated = |n: u32| log.with_file_name(format!("container.log.{n}"));
    assert!(log.exists() && rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "rotation keeps 3 files in all");
    assert!(std::fs::metadata(&log).unwrap().len() <= 2048);

    let all = b.docker(&["logs", "loc"]).ok();
    let (first, last) = consecutive(&all.stdout);
    assert!(first > 1 && last == 1000, "{first}..{last}");
    assert_eq!(all.stderr, "oops\n");
    // The last 20 lines of both streams.
    let tail = b.docker(&["logs", "--tail", "20", "loc"]).ok();
    assert_eq!(consecutive(&tail.stdout), (982, 1000));
    assert_eq!(tail.stderr, "oops\n");
    let stamped = b
        .docker(&["logs", "--timestamps", "--tail", "2", "loc"])
        .ok();
    let line = stamped.stdout.lines().next().unwrap();
    let (time, text) = line.split_once(' ').unwrap();
    assert_eq!(text, "line-1000");
    assert!(
        time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    // --since that time keeps the last lines, --until before it drops them.
    let since = b.docker(&["logs", "--since", time, "loc"]).ok();
    assert!(since.stdout.ends_with("line-1000\n"), "{}", since.stdout);
    let until = b
        .docker(&["logs", "--until", "2000-01-01T00:00:00Z", "loc"])
        .ok();
    assert_eq!(until.stdout, "");

    followed_across_rotations(&b, "slow", &local);

    let refused = b.docker(&[
        "run",
        "--log-driver",
        "local",
        "--log-opt",
        "labels=a",
        "busybox",
        "true",
    ]);
    assert!(
        refused
            .stderr
            .contains("unknown log opt 'labels' for log driver local"),
        "{}",
        refused.stderr
    );
    b.docker(&["rm", "loc", "slow"]).ok();
    b.finish();
}

#[test]
fn berthd_log_driver_and_log_opt_are_the_defaults_of_new_containers() {
    let b = Berth::start_with(&["--log-driver", "local", "--log-opt", "max-size=5k"]);
    b.load_busybox();
    let info = b.docker(&["info", "-f", "{{.LoggingDriver}}"]).ok();
    assert_eq!(info.out(), "local");
    b.docker(&["run", "--name", "plain", "busybox", "echo", "hello"])
        .ok();
    b.docker(&[
        "run",
        "--name",
        "jf",
        "--log-driver",
        "json-file",
        "busybox",
        "echo",
        "there",
    ])
    .ok();
    let config = |name: &str| {
        b.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}}",
            name,
        ])
        .ok()
        .out()
        .to_string()
    };
    // The daemon's options come with the daemon's driver only.
    assert_eq!(config("plain"), r#"local {"max-size":"5k"}"#);
    assert_eq!(config("jf"), "json-file {}");
    assert_eq!(b.docker(&["logs", "plain"]).ok().stdout, "hello\n");
    assert_eq!(b.docker(&["logs", "jf"]).ok().stdout, "there\n");
    b.docker(&["rm", "plain", "jf"]).ok();
    b.finish();
}
