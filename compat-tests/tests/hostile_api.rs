//! Hostile and malformed API requests: each gets a Docker-style 4xx with a
//! JSON message, and none leaves a container or an image behind. (Paths
//! that try to escape are attacked in copy.rs, build.rs, images.rs and
//! image_archives.rs.)

use berth_compat_tests::Berth;

fn create(b: &Berth, query: &str, body: &str) -> (u16, String) {
    let r = b.api(
        "POST",
        &format!("/v1.50/containers/create{query}"),
        Some(body.as_bytes()),
    );
    let status = r.status;
    let message = if status >= 400 {
        r.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{status} without a JSON message: {}", r.text()))
            .to_string()
    } else {
        String::new()
    };
    (status, message)
}

#[test]
fn bad_create_requests_are_refused_and_store_nothing() {
    let b = Berth::start();
    b.load_busybox();
    let long_name = "n".repeat(300);
    let long_image = "a".repeat(5000);
    let huge_labels = {
        let labels: Vec<String> = (0..30_000)
            .map(|i| format!("\"label{i}\":\"{}\"", "v".repeat(64)))
            .collect();
        format!(r#"{{"Image":"busybox","Labels":{{{}}}}}"#, labels.join(","))
    };
    let cases: Vec<(String, String, u16, &str)> = vec![
        ("".into(), "{bad".into(), 400, "invalid JSON"),
        ("".into(), "[]".into(), 400, "must be an object"),
        ("".into(), r#"{"Image":5}"#.into(), 400, "invalid type"),
        (
            format!("?name={long_name}"),
            r#"{"Image":"busybox"}"#.into(),
            400,
            "Invalid container name",
        ),
        (
            "?name=a%2F..%2Fb".into(),
            r#"{"Image":"busybox"}"#.into(),
            400,
            "Invalid container name",
        ),
        (
            "".into(),
            format!(r#"{{"Image":"{long_image}"}}"#),
            404,
            "No such image",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","Env":["=x"]}"#.into(),
            400,
            "invalid environment variable: =x",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","HostConfig":{"Memory":-5}}"#.into(),
            400,
            "negative values are not allowed",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","HostConfig":{"Memory":1}}"#.into(),
            400,
            "Minimum memory limit allowed is 6MB",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","HostConfig":{"NanoCpus":999999999999999}}"#.into(),
            400,
            "Range of CPUs",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","HostConfig":{"ShmSize":-1}}"#.into(),
            400,
            "SHM size can not be less than 0",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","HostConfig":{"Ulimits":[{"Name":"nofile","Soft":5,"Hard":1}]}}"#
                .into(),
            400,
            "ulimit soft limit",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","HostConfig":{"CapAdd":["CAP_NOPE"]}}"#.into(),
            400,
            "unknown capability",
        ),
        (
            "".into(),
            r#"{"Image":"busybox","HostConfig":{"PidMode":"nonsense"}}"#.into(),
            400,
            "invalid PID mode",
        ),
        ("".into(), huge_labels, 413, "request body too large"),
    ];
    for (query, body, status, message) in &cases {
        let (got, msg) = create(&b, query, body);
        assert_eq!(
            got,
            *status,
            "{query} {}: {msg}",
            &body[..body.len().min(80)]
        );
        assert!(msg.contains(message), "{msg:?} lacks {message:?}");
    }
    assert_eq!(
        b.docker(&["ps", "-aq"]).ok().out(),
        "",
        "nothing was created"
    );

    // Unknown fields are ignored, as Docker ignores them.
    let (got, msg) = create(
        &b,
        "?name=tolerant",
        r#"{"Image":"busybox","FutureField":1,"HostConfig":{"AlsoNew":{"x":1}}}"#,
    );
    assert_eq!(got, 201, "{msg}");
    assert_eq!(b.docker(&["ps", "-aq"]).ok().out().lines().count(), 1);
}

#[test]
fn bad_references_and_queries_are_refused() {
    let b = Berth::start();
    b.load_busybox();
    let before = b.docker(&["images", "-q"]).ok().stdout;
    for (method, path, status, message) in [
        (
            "POST",
            "/v1.50/images/create?fromImage=..%2F..%2Fetc&tag=latest",
            400,
            "invalid reference format",
        ),
        (
            "POST",
            "/v1.50/images/create?fromImage=UPPER&tag=latest",
            400,
            "must be lowercase",
        ),
        (
            "POST",
            "/v1.50/images/busybox/tag?repo=..%2Fx&tag=y",
            400,
            "invalid reference format",
        ),
        (
            "POST",
            "/v1.50/images/busybox/tag?repo=ok&tag=bad%20tag",
            400,
            "invalid reference format",
        ),
        (
            "GET",
            "/v1.50/containers/json?filters=%7Bbad",
            400,
            "invalid filter",
        ),
    ] {
        let r = b.api(method, path, None);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(message), "{path}: {msg:?}");
    }
    assert_eq!(b.docker(&["images", "-q"]).ok().stdout, before);
}
