//! Attaching to containers: piped stdin, `docker attach` before and after
//! start, several clients at once, detach keys on a terminal, and resizing
//! a container's terminal.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use berth_compat_tests::{http, Berth};

/// Reads from `s` until `needle` has appeared `times` times; panics on EOF
/// or after 30 s (the socket's read timeout).
fn read_until(s: &mut UnixStream, needle: &str, times: usize) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen).matches(needle).count() < times {
        let n = s.read(&mut buf).expect("reading the attach stream");
        assert!(
            n > 0,
            "stream ended before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Whether the server closed the stream (EOF) within 10 s; bytes still in
/// flight before the close are skipped.
fn closed(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[test]
fn piped_stdin_and_several_attached_clients() {
    let b = Berth::start();
    b.load_busybox();
    assert_eq!(
        b.docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"hi\nthere\n")
            .ok()
            .stdout,
        "hi\nthere\n"
    );

    // `docker attach` after start, with stdin: the container reads a line.
    // Without StdinOnce (`run -d -i`), the end of the client's input ends
    // its session (Docker's rule), so the answer is read from the log.
    b.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "reader",
        "busybox",
        "sh",
        "-c",
        "read l; echo got:$l",
    ])
    .ok();
    b.docker_stdin(&["attach", "reader"], b"one\n").ok();
    assert_eq!(b.docker(&["wait", "reader"]).ok().out(), "0");
    assert_eq!(b.docker(&["logs", "reader"]).ok().stdout, "got:one\n");

    // So a client whose input ends is let go at once, while the container
    // runs on. (The docker CLI then waits for the container's exit, to
    // return its status; the raw API shows the session's end.)
    b.docker(&["run", "-d", "-i", "--name", "keeper", "busybox", "cat"])
        .ok();
    let (mut client, status) = http::hijack(
        &b.socket,
        "/v1.50/containers/keeper/attach?stream=1&stdin=1&stdout=1&stderr=1",
    )
    .unwrap();
    assert!(status.contains("101"), "{status}");
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        closed(&mut client),
        "the session outlived the client's input"
    );
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Running}}", "keeper"])
            .ok()
            .out(),
        "true"
    );

    // Two clients: one watching (raw API), one typing (the CLI). The
    // container ticks until it gets a line, so the watcher knows it is
    // connected before the line is sent.
    b.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "shared",
        "busybox",
        "sh",
        "-c",
        "while ! read -t 0.1 l; do echo tick; done; echo got:$l",
    ])
    .ok();
    let (mut watcher, status) = http::hijack(
        &b.socket,
        "/v1.50/containers/shared/attach?stream=1&stdout=1",
    )
    .unwrap();
    assert!(status.contains("101"), "{status}");
    read_until(&mut watcher, "tick", 1);
    b.docker_stdin(&["attach", "shared"], b"two\n").ok();
    let watched = read_until(&mut watcher, "got:two", 1);
    assert!(watched.contains("got:two"));
    assert!(
        closed(&mut watcher),
        "the stream stays open after the container exited"
    );

    // Attaching to what is not there, or with bad detach keys.
    assert_eq!(
        http::hijack(
            &b.socket,
            "/v1.50/containers/nosuch/attach?stream=1&stdout=1"
        )
        .unwrap()
        .1
        .split(' ')
        .nth(1),
        Some("404")
    );
    b.docker(&["rm", "-f", "reader", "shared", "keeper"]).ok();
    b.finish();
}

#[test]
fn detach_keys_and_resize_on_a_terminal() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "-it", "--name", "term", "busybox", "sh"])
        .ok();
    let attach = |query: &str| {
        let (s, status) = http::hijack(
            &b.socket,
            &format!("/v1.50/containers/term/attach?stream=1&stdin=1&stdout=1{query}"),
        )
        .unwrap();
        assert!(status.contains("101"), "{status}");
        s
    };

    // Default keys: ctrl-p ctrl-q ends the session, the shell runs on.
    let mut s = attach("");
    s.write_all(b"echo mark-$((40+2))\n").unwrap();
    read_until(&mut s, "mark-42", 1);
    s.write_all(b"\x10\x11").unwrap();
    assert!(closed(&mut s), "ctrl-p ctrl-q did not detach");
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Running}}", "term"])
            .ok()
            .out(),
        "true"
    );

    // Attached again: the shell still reads its terminal. Resize it.
    let resized = b.api("POST", "/v1.50/containers/term/resize?h=40&w=100", None);
    assert_eq!(resized.status, 200);
    let mut s = attach("&detachKeys=ctrl-x,y");
    s.write_all(b"stty size; echo size-done\n").unwrap();
    let out = read_until(&mut s, "size-done", 2);
    assert!(out.contains("40 100"), "{out}");
    // A ctrl-p alone is input now; the custom sequence detaches.
    s.write_all(b"\x18y").unwrap();
    assert!(closed(&mut s), "ctrl-x y did not detach");
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Running}}", "term"])
            .ok()
            .out(),
        "true"
    );

    let bad = b.api(
        "POST",
        "/v1.50/containers/term/attach?stream=1&stdin=1&detachKeys=ctrl-",
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("Invalid detach keys (ctrl-) provided"),
        "{}",
        bad.text()
    );
    b.docker(&["rm", "-f", "term"]).ok();
    b.finish();
}
