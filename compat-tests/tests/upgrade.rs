//! Hot upgrade: a second berthd takes the API socket over; no request fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use berth_compat_tests::{http, Berth};

#[test]
fn takeover_refuses_no_connection_and_keeps_containers() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "through", "busybox", "sleep", "1000"])
        .ok();
    let pid = b
        .docker(&["inspect", "-f", "{{.State.Pid}}", "through"])
        .ok()
        .out()
        .to_string();
    let old_pid = b.berthd_pid();

    // A client looping on GET /containers/json, one connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let looper = {
        let (stop, ok, failures, socket) =
            (stop.clone(), ok.clone(), failures.clone(), b.socket.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match http::request(&socket, "GET", "/containers/json", None) {
                    Ok(r) if r.status == 200 && r.text().contains("through") => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}: {}", r.status, r.text()))
                    }
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
            }
        })
    };
    // Let the loop run against the old berthd first.
    let before = loop {
        let n = ok.load(Ordering::SeqCst);
        if n >= 20 {
            break n;
        }
        assert!(
            failures.lock().unwrap().is_empty(),
            "{:?}",
            failures.lock().unwrap()
        );
    };
    let status = b.takeover();
    assert!(status.success(), "the old berthd exited with {status}");
    assert_ne!(b.berthd_pid(), old_pid);
    // And against the new one.
    let target = ok.load(Ordering::SeqCst) + 20;
    while ok.load(Ordering::SeqCst) < target {
        assert!(
            failures.lock().unwrap().is_empty(),
            "{:?}",
            failures.lock().unwrap()
        );
    }
    stop.store(true, Ordering::SeqCst);
    looper.join().unwrap();
    assert!(
        failures.lock().unwrap().is_empty(),
        "requests failed during the upgrade: {:?}",
        failures.lock().unwrap()
    );
    assert!(ok.load(Ordering::SeqCst) > before);
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Pid}}", "through"])
            .ok()
            .out(),
        pid
    );
    b.docker(&["rm", "-f", "through"]).ok();
    // The new berthd can be taken over in turn.
    assert!(b.takeover().success());
    assert_eq!(
        b.docker(&["run", "--rm", "busybox", "echo", "again"])
            .ok()
            .out(),
        "again"
    );
    b.finish();
}

#[test]
fn socket_activation_uses_the_passed_socket() {
    let mut b = Berth::start();
    b.load_busybox();
    b.kill_berthd();
    b.spawn_berthd_socket_activated();
    assert!(b.log().contains("using the socket passed by systemd"));
    assert_eq!(
        b.docker(&["run", "--rm", "busybox", "echo", "activated"])
            .ok()
            .out(),
        "activated"
    );
    b.finish();
}
