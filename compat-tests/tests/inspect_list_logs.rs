//! `docker ps` with filters, `docker inspect`, `docker logs`.

use berth_compat_tests::Berth;

#[test]
fn ps_filters() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["network", "create", "front"]).ok();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "alpha",
        "--label",
        "tier=web",
        "-v",
        "keep:/data",
        "--network",
        "front",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    b.docker(&[
        "run", "--name", "beta", "--label", "tier=db", "busybox", "sh", "-c", "exit 2",
    ]);
    b.docker(&["run", "--name", "gamma", "busybox", "true"])
        .ok();
    b.docker(&["create", "--name", "delta", "busybox", "true"])
        .ok();
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = b
            .docker(&a)
            .ok()
            .stdout
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v.join(",")
    };
    assert_eq!(names(&[]), "alpha");
    assert_eq!(names(&["-a"]), "alpha,beta,delta,gamma");
    assert_eq!(names(&["-a", "--filter", "status=exited"]), "beta,gamma");
    assert_eq!(names(&["-a", "--filter", "status=created"]), "delta");
    assert_eq!(names(&["-a", "--filter", "exited=2"]), "beta");
    assert_eq!(names(&["-a", "--filter", "label=tier"]), "alpha,beta");
    assert_eq!(names(&["-a", "--filter", "label=tier=db"]), "beta");
    assert_eq!(names(&["-a", "--filter", "name=gam"]), "gamma");
    assert_eq!(
        names(&["-a", "--filter", "ancestor=busybox"]),
        "alpha,beta,delta,gamma"
    );
    let alpha = b
        .docker(&["inspect", "-f", "{{.Id}}", "alpha"])
        .ok()
        .out()
        .to_string();
    assert_eq!(
        names(&["-a", "--filter", &format!("id={}", &alpha[..10])]),
        "alpha"
    );
    assert_eq!(
        b.docker(&["ps", "-a", "-n", "2", "-q"])
            .ok()
            .stdout
            .lines()
            .count(),
        2
    );
    // Creation order: alpha, beta, gamma, delta.
    assert_eq!(names(&["--filter", "before=gamma"]), "alpha,beta");
    assert_eq!(names(&["--filter", "since=beta"]), "delta,gamma");
    assert_eq!(names(&["-n", "1"]), "delta");
    assert_eq!(names(&["-a", "--filter", "volume=keep"]), "alpha");
    assert_eq!(names(&["-a", "--filter", "volume=/data"]), "alpha");
    assert_eq!(names(&["-a", "--filter", "network=front"]), "alpha");
    assert_eq!(
        names(&["-a", "--filter", "health=none"]),
        "alpha,beta,delta,gamma"
    );
    assert_eq!(names(&["-a", "--filter", "health=healthy"]), "");
    assert_eq!(
        b.docker(&["ps", "--format", "{{.Mounts}} {{.Networks}}"])
            .ok()
            .out(),
        "keep front"
    );
    let r = b.docker(&["ps", "--filter", "status=bogus"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("invalid filter"), "{r:?}");
    let r = b.docker(&["ps", "--filter", "nonsense=1"]);
    assert!(r.stderr.contains("invalid filter 'nonsense'"), "{r:?}");
    b.finish();
}

/// `docker ps` answers from berthd's memory of the containers; every change
/// made between two listings shows in the second, and a document kept for
/// one API version is not served to another.
#[test]
fn ps_follows_every_change_between_listings() {
    let b = Berth::start();
    b.load_busybox();
    let line = |name: &str| {
        b.docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.Names}}|{{.Image}}|{{.Status}}|{{.Networks}}|{{.Ports}}",
        ])
        .ok()
        .out()
        .to_string()
    };
    b.docker(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"])
        .ok();
    let first = line("web");
    assert!(first.starts_with("web|busybox|Up "), "{first}");
    assert!(first.contains("|bridge|"), "{first}");

    b.docker(&["rename", "web", "site"]).ok();
    assert!(line("site").starts_with("site|busybox|Up "));
    assert_eq!(line("web"), "");

    b.docker(&["network", "create", "front"]).ok();
    b.docker(&["network", "connect", "front", "site"]).ok();
    let connected = line("site");
    // The CLI joins the map's keys in Go's map order, which varies.
    let mut networks: Vec<&str> = connected
        .split('|')
        .nth(3)
        .unwrap_or("")
        .split(',')
        .collect();
    networks.sort();
    assert_eq!(networks, ["bridge", "front"], "{connected}");

    // The name the container was run with moves to another image: the
    // listing shows the container's image by id from then on.
    b.docker(&["commit", "site", "other"]).ok();
    b.docker(&["tag", "other", "busybox"]).ok();
    let retagged = line("site");
    assert!(!retagged.contains("|busybox|"), "{retagged}");

    b.docker(&["stop", "-t", "0", "site"]).ok();
    let stopped = line("site");
    assert!(stopped.contains("|Exited (137) "), "{stopped}");
    // A stopped container is listed without the ports and addresses it had.
    assert!(stopped.ends_with('|'), "{stopped}");

    b.docker(&[
        "run",
        "-d",
        "--name",
        "pub",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let published = line("pub");
    assert!(published.contains("127.0.0.1:"), "{published}");
    assert!(published.ends_with("->80/tcp"), "{published}");

    b.docker(&["rm", "-f", "site"]).ok();
    assert_eq!(line("site"), "");

    // GwPriority came with API 1.48: a listing for 1.47 lacks it even right
    // after one for 1.50 had it, and the other way round.
    let has_priority = |version: &str| {
        let r = b.api("GET", &format!("/v{version}/containers/json"), None);
        assert_eq!(r.status, 200);
        String::from_utf8_lossy(&r.body).contains("\"GwPriority\"")
    };
    assert!(has_priority("1.50"));
    assert!(!has_priority("1.47"));
    assert!(has_priority("1.50"));
    b.docker(&["rm", "-f", "pub"]).ok();
    b.finish();
}

#[test]
fn inspect_reports_state_and_config() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run", "-d", "--name", "insp", "-e", "A=1", "--label", "k=v", "busybox", "sleep", "1000",
    ])
    .ok();
    let v: serde_json::Value =
        serde_json::from_str(&b.docker(&["inspect", "insp"]).ok().stdout).unwrap();
    let c = &v[0];
    assert_eq!(c["Name"], "/insp");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_i64().unwrap() > 1);
    assert!(c["State"]["StartedAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(c["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(c["Path"], "sleep");
    assert_eq!(c["Args"], serde_json::json!(["1000"]));
    assert!(c["Image"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(c["Config"]["Image"], "busybox");
    assert!(c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "A=1"));
    assert!(c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().starts_with("PATH=")));
    assert_eq!(c["Config"]["Labels"]["k"], "v");
    assert!(c["HostConfig"].is_object());
    assert!(c["NetworkSettings"].is_object());
    assert_eq!(c["Mounts"], serde_json::json!([]));
    assert!(c["LogPath"].as_str().unwrap().ends_with("-json.log"));
    b.docker(&["rm", "-f", "insp"]).ok();
    b.finish();
}

#[test]
fn logs_with_streams_tail_timestamps_and_time_bounds() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done",
    ])
    .ok();
    let all = b.docker(&["logs", "talker"]).ok();
    assert_eq!(all.stdout, "out1\nout2\nout3\nout4\nout5\n");
    assert_eq!(all.stderr, "err1\nerr2\nerr3\nerr4\nerr5\n");
    let tail = b.docker(&["logs", "--tail", "2", "talker"]).ok();
    // --tail counts lines of both streams together.
    assert_eq!(tail.stdout.lines().count() + tail.stderr.lines().count(), 2);
    assert_eq!(b.docker(&["logs", "--tail", "0", "talker"]).ok().stdout, "");
    let ts = b.docker(&["logs", "-t", "talker"]).ok();
    let first = ts.stdout.lines().next().unwrap();
    let (stamp, text) = first.split_once(' ').unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{first}");
    assert_eq!(text, "out1");
    assert_eq!(
        b.docker(&["logs", "--until", "2000-01-01T00:00:00Z", "talker"])
            .ok()
            .stdout,
        ""
    );
    assert_eq!(
        b.docker(&["logs", "--since", "2000-01-01T00:00:00Z", "talker"])
            .ok()
            .stdout
            .lines()
            .count(),
        5
    );
    b.finish();
}

#[test]
fn logs_of_a_tty_container_are_raw() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-t", "--name", "ttylog", "busybox", "echo", "hello"])
        .ok();
    assert_eq!(b.docker(&["logs", "ttylog"]).ok().stdout, "hello\r\n");
    b.finish();
}

#[test]
fn logs_follow_streams_until_the_container_exits() {
    let b = Berth::start();
    b.load_busybox();
    // The container paces itself; `logs -f` must show every line and return
    // on its own once the container has exited.
    let id = b
        .docker(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4; do echo tick$i; sleep 0.2; done",
        ])
        .ok()
        .out()
        .to_string();
    let r = b.docker(&["logs", "-f", &id]).ok();
    assert_eq!(r.stdout, "tick1\ntick2\ntick3\ntick4\n");
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Status}}", &id])
            .ok()
            .out(),
        "exited"
    );
    b.finish();
}
