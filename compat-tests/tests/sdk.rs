//! The Python `docker` SDK (PyPI) on the streaming endpoints: logs, events,
//! stats and attach sockets (compat-tests/python/sdk_streams.py); attach
//! over a WebSocket with the websocket-client package (ws_attach.py).

use std::process::Command;

use berth_compat_tests::{workspace_root, Berth};

#[test]
fn python_sdk_streams() {
    let b = Berth::start();
    b.load_busybox();
    let out = Command::new("python3")
        .arg(workspace_root().join("compat-tests/python/sdk_streams.py"))
        .arg(format!("unix://{}", b.socket.display()))
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sdk streams ok"), "{text}");
    b.finish();
}

#[test]
fn websocket_attach_carries_stdin_and_raw_output() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "wsc",
        "busybox",
        "sh",
        "-c",
        "read l; echo got:$l; echo err:$l >&2",
    ])
    .ok();
    let out = Command::new("python3")
        .arg(workspace_root().join("compat-tests/python/ws_attach.py"))
        .arg(&b.socket)
        .arg("wsc")
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ws attach ok"), "{text}");
    assert_eq!(b.docker(&["wait", "wsc"]).ok().out(), "0");
    b.docker(&["rm", "wsc"]).ok();
    b.finish();
}
