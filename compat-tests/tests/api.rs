//! Wire details the CLI hides: ping headers, version prefixes, error bodies.

use berth_compat_tests::Berth;

#[test]
fn ping_version_and_info() {
    let b = Berth::start();
    let r = b.api("GET", "/_ping", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    assert_eq!(r.header("Api-Version"), Some("1.50"));
    assert_eq!(r.header("Ostype"), Some("linux"));
    assert_eq!(r.header("Docker-Experimental"), Some("false"));
    assert_eq!(r.header("Builder-Version"), Some("2"));
    let r = b.api("HEAD", "/_ping", None);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let v = b
        .docker(&[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
        ])
        .ok();
    assert_eq!(v.out(), "1.50 1.24");
    let info = b
        .docker(&["info", "--format", "{{.DefaultRuntime}} {{.Driver}}"])
        .ok();
    // On these hosts crun refuses the hybrid cgroup layout, so runc is chosen.
    let rt = info.out().split(' ').next().unwrap().to_string();
    assert!(rt == "runc" || rt == "crun", "{info:?}");
    // What the CLI shows as "runc version" is the default runtime's own
    // `--version` commit line; the backing filesystem is the data root's.
    let said = std::process::Command::new(&rt)
        .arg("--version")
        .output()
        .unwrap();
    let commit = String::from_utf8_lossy(&said.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("commit:").map(|c| c.trim().to_string()))
        .unwrap();
    let shown = b
        .docker(&[
            "info",
            "--format",
            "{{.RuncCommit.ID}}|{{index .DriverStatus 0 1}}",
        ])
        .ok();
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(b.data_root())
        .output()
        .unwrap();
    let fs = match String::from_utf8_lossy(&fs.stdout).trim() {
        "ext2/ext3" => "extfs".to_string(),
        other => other.to_string(),
    };
    assert_eq!(shown.out(), format!("{commit}|{fs}"));
    b.finish();
}

#[test]
fn versioned_paths() {
    let b = Berth::start();
    assert_eq!(b.api("GET", "/v1.24/version", None).status, 200);
    assert_eq!(b.api("GET", "/v1.50/containers/json", None).status, 200);
    let r = b.api("GET", "/v1.99/version", None);
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("client version 1.99 is too new"));
    let r = b.api("GET", "/v1.12/version", None);
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("is too old"));
    b.finish();
}

#[test]
fn errors_are_docker_json_with_the_right_status() {
    let b = Berth::start();
    b.load_busybox();
    let r = b.api("GET", "/containers/nope/json", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json()["message"], "No such container: nope");
    let r = b.api("POST", "/containers/create", Some(b"{not json"));
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let r = b.api(
        "POST",
        "/containers/create",
        Some(br#"{"Image":"busybox","Cmd":"not-a-list-but-a-string-is-fine?","Env":42}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = b.api(
        "POST",
        "/containers/create?name=a/b",
        Some(br#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(r.status, 400);
    let r = b.api(
        "POST",
        "/containers/create?name=dup",
        Some(br#"{"Image":"busybox","Cmd":["true"],"UnknownField":1}"#),
    );
    assert_eq!(r.status, 201, "unknown fields are ignored: {}", r.text());
    let r = b.api(
        "POST",
        "/containers/create?name=dup",
        Some(br#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(r.status, 409);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("is already in use"));
    let r = b.api(
        "POST",
        "/containers/create",
        Some(br#"{"Image":"nosuch:tag","Cmd":["true"]}"#),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: nosuch:tag");
    let r = b.api("POST", "/containers/dup/start", None);
    assert_eq!(r.status, 204, "{}", r.text());
    let r = b.api("POST", "/containers/dup/wait", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["StatusCode"], 0);
    let r = b.api("POST", "/containers/dup/kill", None);
    assert_eq!(r.status, 409);
    let r = b.api("GET", "/containers/json?filters=%7Bbad", None);
    assert_eq!(r.status, 400);
    assert_eq!(b.api("GET", "/no/such/endpoint", None).status, 404);
    b.finish();
}

#[test]
fn objects_named_like_fixed_routes_are_reached_by_name() {
    let b = Berth::start();
    b.load_busybox();
    for name in ["json", "create", "prune"] {
        b.docker(&["create", "--name", name, "busybox", "true"])
            .ok();
        b.docker(&["rm", name]).ok();
    }
    for name in ["create", "prune"] {
        b.docker(&["network", "create", name]).ok();
        let seen = b
            .docker(&["network", "inspect", "-f", "{{.Name}}", name])
            .ok();
        assert_eq!(seen.out(), name);
        b.docker(&["network", "rm", name]).ok();
        b.docker(&["volume", "create", name]).ok();
        let seen = b
            .docker(&["volume", "inspect", "-f", "{{.Name}}", name])
            .ok();
        assert_eq!(seen.out(), name);
        b.docker(&["volume", "rm", name]).ok();
    }
    b.finish();
}
