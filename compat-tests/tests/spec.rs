//! Responses checked against api-spec/engine.yaml (the official spec's subset).

use berth_compat_tests::{run_python, workspace_root, Berth};

#[test]
fn responses_match_the_official_api_spec() {
    let b = Berth::start();
    b.load_busybox();
    let spec = workspace_root().join("api-spec/engine.yaml");
    run_python(
        "check_spec.py",
        &[b.socket.as_os_str(), spec.as_os_str()],
        "all responses match",
    );
    b.finish();
}
