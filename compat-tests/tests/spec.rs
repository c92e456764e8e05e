//! Responses checked against api-spec/engine.yaml (the official spec's subset).

use std::process::Command;

use berth_compat_tests::{workspace_root, Berth};

#[test]
fn responses_match_the_official_api_spec() {
    let b = Berth::start();
    b.load_busybox();
    let root = workspace_root();
    let out = Command::new("python3")
        .arg(root.join("compat-tests/python/check_spec.py"))
        .arg(&b.socket)
        .arg(root.join("api-spec/engine.yaml"))
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("all responses match"), "{text}");
    b.finish();
}
