//! The observing and adjusting commands: pause and unpause, rename, update
//! (limits and restart policy, live), top, stats and diff.

use berth_compat_tests::Berth;

/// Whether the kernel's freezer holds the cgroup of process `pid` (v1
/// freezer controller, or v2's cgroup.events).
fn frozen(pid: &str) -> bool {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let parts: Vec<&str> = line.splitn(3, ':').collect();
        if parts[1].split(',').any(|c| c == "freezer") {
            let state = std::fs::read_to_string(format!(
                "/sys/fs/cgroup/freezer{}/freezer.state",
                parts[2]
            ))
            .unwrap();
            return state.trim() == "FROZEN";
        }
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cgroup.events"))
        .unwrap()
        .contains("frozen 1")
}

/// A cgroup file as the container sees it, v2 name first, then v1.
fn inside(b: &Berth, name: &str, v2: &str, v1: &str) -> String {
    b.docker(&[
        "exec",
        name,
        "sh",
        "-c",
        &format!("cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}"),
    ])
    .ok()
    .out()
    .to_string()
}

/// The actions of every event of container `name` so far, replayed up to
/// now to the nanosecond (the CLI's --until has whole seconds).
fn event_actions(b: &Berth, name: &str) -> Vec<String> {
    let id = b
        .docker(&["inspect", "-f", "{{.Id}}", name])
        .ok()
        .out()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let query = format!(
        "/v1.50/events?since=0&until={}.{:09}&filters=%7B%22container%22%3A%5B%22{id}%22%5D%7D",
        now.as_secs(),
        now.subsec_nanos()
    );
    let events = b.api("GET", &query, None).text();
    events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["Action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn pause_unpause_rename_and_update() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
    ])
    .ok();
    let pid = b
        .docker(&["inspect", "-f", "{{.State.Pid}}", "box"])
        .ok()
        .out()
        .to_string();

    b.docker(&["pause", "box"]).ok();
    assert!(frozen(&pid), "pause left the container's processes running");
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
            "box"
        ])
        .ok()
        .out(),
        "paused true true"
    );
    assert!(b
        .docker(&["ps", "--format", "{{.Status}}"])
        .ok()
        .out()
        .ends_with("(Paused)"));
    let again = b.docker(&["pause", "box"]);
    assert!(
        again.stderr.contains("is already paused"),
        "{}",
        again.stderr
    );
    let exec = b.docker(&["exec", "box", "true"]);
    assert!(
        exec.stderr
            .contains("is paused, unpause the container before exec"),
        "{}",
        exec.stderr
    );
    b.docker(&["unpause", "box"]).ok();
    assert!(!frozen(&pid));
    // Running again: the counter moves on.
    let first = b
        .docker(&["exec", "box", "cat", "/tmp/n"])
        .ok()
        .out()
        .to_string();
    b.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        &format!("while [ \"$(cat /tmp/n)\" = {first} ]; do sleep 0.05; done"),
    ])
    .ok();
    let not_paused = b.docker(&["unpause", "box"]);
    assert!(
        not_paused.stderr.contains("is not paused"),
        "{}",
        not_paused.stderr
    );

    // rename
    b.docker(&["run", "-d", "--name", "other", "busybox", "sleep", "300"])
        .ok();
    b.docker(&["rename", "box", "renamed"]).ok();
    assert!(b.docker(&["inspect", "box"]).stderr.contains("No such"));
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.Name}}", "renamed"])
            .ok()
            .out(),
        "/renamed"
    );
    let taken = b.docker(&["rename", "renamed", "other"]);
    assert!(
        taken.stderr.contains("is already in use"),
        "{}",
        taken.stderr
    );

    // update, live: the limits reach the container's cgroup.
    b.docker(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "40",
        "--cpus",
        "0.5",
        "--restart",
        "on-failure:3",
        "renamed",
    ])
    .ok();
    let hc = b.docker(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}", "renamed"]).ok();
    assert_eq!(hc.out(), "67108864 40 500000000 on-failure");
    assert_eq!(
        inside(&b, "renamed", "memory.max", "memory/memory.limit_in_bytes"),
        "67108864"
    );
    assert_eq!(inside(&b, "renamed", "pids.max", "pids/pids.max"), "40");
    let cpu = inside(&b, "renamed", "cpu.max", "cpu/cpu.cfs_quota_us");
    assert!(cpu == "50000" || cpu == "50000 100000", "{cpu}");
    let bad = b.docker(&["update", "--memory", "1k", "renamed"]);
    assert!(
        bad.stderr.contains("Minimum memory limit allowed is 6MB"),
        "{}",
        bad.stderr
    );

    // Limits given at run time, and killing a paused container.
    let limited = b
        .docker(&[
            "run",
            "--rm",
            "--memory",
            "32m",
            "--pids-limit",
            "12",
            "busybox",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ])
        .ok();
    assert_eq!(limited.out(), "12");
    b.docker(&["pause", "other"]).ok();
    b.docker(&["kill", "other"]).ok();
    b.docker(&["wait", "other"]).ok();
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}} {{.State.ExitCode}}",
            "other"
        ])
        .ok()
        .out(),
        "exited false 137"
    );

    let actions = event_actions(&b, "renamed");
    for action in ["pause", "unpause", "rename", "update"] {
        assert!(
            actions.iter().any(|a| a == action),
            "no {action} event in {actions:?}"
        );
    }
    b.docker(&["rm", "-f", "renamed", "other"]).ok();
    b.finish();
}

#[test]
fn top_stats_and_diff() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run", "-d", "--name", "box", "--memory", "64m", "busybox", "sleep", "3141",
    ])
    .ok();

    assert_eq!(b.docker(&["diff", "box"]).ok().out(), "");
    let top = b.docker(&["top", "box"]).ok();
    let mut lines = top.stdout.lines();
    assert!(lines.next().unwrap().split_whitespace().any(|t| t == "PID"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{}", top.stdout);
    assert!(rows[0].ends_with("sleep 3141"));
    b.docker(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "touch /tmp/started; exec sleep 2718",
    ])
    .ok();
    b.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "until [ -e /tmp/started ]; do sleep 0.05; done",
    ])
    .ok();
    let custom = b.docker(&["top", "box", "-o", "pid,args"]).ok();
    assert_eq!(
        custom
            .stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert!(custom.stdout.contains("sleep 2718"), "{}", custom.stdout);
    let stopped = b.docker(&["run", "--name", "done", "busybox", "true"]);
    assert_eq!(stopped.code, 0);
    assert!(b.docker(&["top", "done"]).stderr.contains("is not running"));

    // stats: the memory limit, pids, and a busy process's CPU share.
    let s = b
        .docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemUsage}}",
            "box",
        ])
        .ok();
    let words: Vec<&str> = s.out().split_whitespace().collect();
    assert_eq!(words[0], "box");
    assert_eq!(words[1], "2", "{}", s.stdout);
    assert_eq!(words.last(), Some(&"64MiB"), "{}", s.stdout);
    b.docker(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ])
    .ok();
    let cpu = b
        .docker(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy"])
        .ok();
    let percent: f64 = cpu.out().trim_end_matches('%').parse().unwrap();
    assert!(percent > 5.0, "a busy loop used {percent}% CPU");
    let one = b.api(
        "GET",
        "/v1.50/containers/box/stats?stream=false&one-shot=true",
        None,
    );
    assert_eq!(one.status, 200);
    let doc = one.json();
    assert_eq!(doc["name"], "/box");
    assert!(doc["memory_stats"]["usage"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(doc["memory_stats"]["limit"], 64 << 20);
    assert!(doc["cpu_stats"]["online_cpus"].as_u64().unwrap() >= 1);
    let idle = b
        .api("GET", "/v1.50/containers/done/stats?stream=false", None)
        .json();
    assert_eq!(idle["memory_stats"], serde_json::json!({}));

    // diff: added, changed, deleted; mount points are no change.
    b.docker(&["exec", "box", "sh", "-c", "rm /tmp/started; echo x > /tmp/new; rm /etc/group; mkdir -p /root/a/b; echo more >> /etc/passwd"]).ok();
    let diff = b.docker(&["diff", "box"]).ok();
    assert_eq!(
        diff.out(),
        "C /etc\nD /etc/group\nC /etc/passwd\nC /root\nA /root/a\nA /root/a/b\nC /tmp\nA /tmp/new"
    );
    b.docker(&["rm", "-f", "box", "busy", "done"]).ok();
    b.finish();
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported() {
    let b = Berth::start();
    b.load_busybox();
    // `tail` keeps all of a newline-free stream: /dev/zero never ends.
    let r = b.docker(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "8m",
        "busybox",
        "sh",
        "-c",
        "tail /dev/zero",
    ]);
    assert_eq!(r.code, 137, "{r:?}");
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "hog"
        ])
        .ok()
        .out(),
        "true 137"
    );
    b.docker(&["run", "--name", "fine", "--memory", "8m", "busybox", "true"])
        .ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.OOMKilled}}", "fine"])
            .ok()
            .out(),
        "false"
    );
    let actions = event_actions(&b, "hog");
    assert_eq!(actions, ["create", "attach", "start", "oom", "die"]);
    b.docker(&["rm", "hog", "fine"]).ok();
    b.finish();
}
