//! The Python `docker` SDK (PyPI) on the streaming endpoints: logs, events,
//! stats and attach sockets (compat-tests/python/sdk_streams.py); attach
//! over a WebSocket with the websocket-client package (ws_attach.py).

use berth_compat_tests::{run_python, Berth};

#[test]
fn python_sdk_streams() {
    let b = Berth::start();
    b.load_busybox();
    let host = format!("unix://{}", b.socket.display());
    run_python("sdk_streams.py", &[host.as_ref()], "sdk streams ok");
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
    run_python(
        "ws_attach.py",
        &[b.socket.as_os_str(), "wsc".as_ref()],
        "ws attach ok",
    );
    assert_eq!(b.docker(&["wait", "wsc"]).ok().out(), "0");
    b.docker(&["rm", "wsc"]).ok();
    b.finish();
}
