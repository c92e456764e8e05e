//! Pod sandboxes through the CRI, driven by crictl: a pod's namespaces are
//! kept without a process, its network comes from the node's CNI plugins
//! (Debian's, with a configuration of the test's own), it survives berthd
//! being killed, and stopping and removing it give back what it took.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_compat_tests::cni::{PodNetwork, PLUGINS};
use berth_compat_tests::containerd::{crictl, Containerd, PodSetup};
use berth_compat_tests::registry::Registry;
use berth_compat_tests::{Berth, Run};
use serde_json::Value;

fn cri_socket(b: &Berth) -> PathBuf {
    b.socket.with_file_name("cri.sock")
}

fn json(run: Run) -> Value {
    let run = run.ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// Berth with a pod network of its own (its slot's bridge and subnet).
fn berth_with_pod_network() -> (Berth, PodNetwork) {
    let mut net = PodNetwork::new("b");
    let b = Berth::start_with(&[
        "--cni-conf-dir",
        net.dir.to_str().unwrap(),
        "--cni-bin-dir",
        PLUGINS,
    ]);
    net.configure(247, b.net.n);
    (b, net)
}

/// A pod config file for `crictl runp`.
fn pod_config(dir: &Path, name: &str, uid: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{uid}.json"));
    let config = serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": uid, "attempt": 1},
        "hostname": format!("{name}-host"),
        "labels": {"app": name},
        "annotations": {"note": "made by a test"},
        "log_directory": dir.join("logs"),
        "linux": {}
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// `crictl runp`: the new pod's id.
fn runp(sock: &Path, config: &Path) -> String {
    let run = crictl(sock, &["runp", config.to_str().unwrap()]).ok();
    run.stdout.trim().to_string()
}

/// Runs `args` inside the namespace file `ns` of kind `kind` ("net", "uts").
fn inside(kind: &str, ns: &str, args: &[&str]) -> Run {
    Command::new("nsenter")
        .arg(format!("--{kind}={ns}"))
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_pod_keeps_its_namespaces_and_network_without_a_process_until_removed() {
    let (mut b, net) = berth_with_pod_network();
    let sock = cri_socket(&b);

    // A node with a CNI network is network-ready.
    let info = json(crictl(&sock, &["info"]));
    let ready: Vec<_> = info["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_bool().unwrap()))
        .collect();
    assert_eq!(ready, [("RuntimeReady", true), ("NetworkReady", true)]);

    let config = pod_config(&b.root, "web", "uid-1");
    let id = runp(&sock, &config);
    assert_eq!(id.len(), 64, "{id}");

    let pods = json(crictl(&sock, &["pods", "-o", "json"]));
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pods}");
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["state"], "SANDBOX_READY");
    assert_eq!(items[0]["metadata"]["name"], "web");
    assert_eq!(items[0]["metadata"]["attempt"], 1);
    assert_eq!(items[0]["labels"]["app"], "web");
    // Pods are not Docker containers.
    assert_eq!(b.docker(&["ps", "-aq"]).ok().stdout.trim(), "");

    let inspect = json(crictl(&sock, &["inspectp", "-o", "json", &id[..12]]));
    let ip = inspect["status"]["network"]["ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with(&format!("{}.", net.prefix)), "{inspect}");
    assert_eq!(net.leased(), vec![ip.clone()]);
    let ns = &inspect["info"]["namespaces"];
    let (netns, uts) = (ns["network"].as_str().unwrap(), ns["uts"].as_str().unwrap());
    // No process holds the pod, yet its namespaces are there: the address
    // on eth0, the hostname it asked for, reachable from the node.
    assert!(
        inside("net", netns, &["ip", "-4", "-o", "addr", "show", "eth0"])
            .ok()
            .stdout
            .contains(&format!("inet {ip}/24"))
    );
    assert!(inside("net", netns, &["ip", "-o", "link", "show", "lo"])
        .ok()
        .stdout
        .contains("UP"));
    assert_eq!(
        inside("uts", uts, &["hostname"]).ok().stdout.trim(),
        "web-host"
    );
    let ping = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "5", &ip])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");

    // The same pod again is refused: its name is reserved.
    let again = crictl(&sock, &["runp", config.to_str().unwrap()]);
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("web_default_uid-1_1") && again.stderr.contains("is reserved"),
        "{again:?}"
    );

    // berthd killed and started again: the pod, its address and its
    // namespaces are all still there.
    b.kill_berthd();
    b.spawn_berthd();
    let inspect = json(crictl(&sock, &["inspectp", "-o", "json", &id]));
    assert_eq!(inspect["status"]["state"], "SANDBOX_READY");
    assert_eq!(inspect["status"]["network"]["ip"], ip.as_str());
    assert!(
        inside("net", netns, &["ip", "-4", "-o", "addr", "show", "eth0"])
            .ok()
            .stdout
            .contains(&ip)
    );

    // Stopped: not ready, its network and address given back; twice is
    // fine.
    crictl(&sock, &["stopp", &id]).ok();
    crictl(&sock, &["stopp", &id]).ok();
    let pods = json(crictl(&sock, &["pods", "-o", "json"]));
    assert_eq!(pods["items"][0]["state"], "SANDBOX_NOTREADY");
    assert!(net.leased().is_empty(), "{:?}", net.leased());
    assert!(!Path::new(netns).exists());
    let ready = json(crictl(&sock, &["pods", "--state", "ready", "-o", "json"]));
    assert_eq!(ready["items"].as_array().map(Vec::len), Some(0), "{ready}");

    // Removed: gone with everything it kept.
    crictl(&sock, &["rmp", &id]).ok();
    let pods = json(crictl(&sock, &["pods", "-o", "json"]));
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(0), "{pods}");
    assert!(!Path::new(uts).exists());
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    let gone = crictl(&sock, &["inspectp", &id]);
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("NotFound"), "{gone:?}");
    b.finish();
}

#[test]
fn a_removed_running_pod_gives_back_its_network_and_a_host_network_pod_needs_none() {
    let (b, net) = berth_with_pod_network();
    let sock = cri_socket(&b);
    let config = pod_config(&b.root, "db", "uid-2");
    let id = runp(&sock, &config);
    assert_eq!(net.leased().len(), 1);
    // rmp of a ready pod stops it first (crictl asks for --force; the
    // runtime does the stop).
    crictl(&sock, &["rmp", "--force", &id]).ok();
    assert!(net.leased().is_empty());

    // On the node's network: no namespace of its own, no address leased.
    let host = b.root.join("host-pod.json");
    std::fs::write(
        &host,
        r#"{"metadata":{"name":"agent","namespace":"kube-system","uid":"uid-3"},
            "linux":{"security_context":{"namespace_options":{"network":2}}}}"#,
    )
    .unwrap();
    let id = runp(&sock, &host);
    let inspect = json(crictl(&sock, &["inspectp", "-o", "json", &id]));
    assert_eq!(
        inspect["status"]["linux"]["namespaces"]["options"]["network"],
        "NODE"
    );
    assert!(
        inspect["info"]["namespaces"]["network"].is_null(),
        "{inspect}"
    );
    assert!(net.leased().is_empty());
    crictl(&sock, &["rmp", "--force", &id]).ok();
    b.finish();
}

/// A pod's status as compared between runtimes: without what differs by
/// nature (ids, times, the address each got from its own subnet).
fn comparable(mut status: Value) -> Value {
    let o = status.as_object_mut().unwrap();
    for key in ["id", "createdAt"] {
        assert!(o.remove(key).is_some(), "{key} missing");
    }
    if let Some(network) = o.get_mut("network") {
        let ip = network["ip"].take();
        network["ip"] = Value::Bool(ip.as_str().is_some_and(|s| !s.is_empty()));
    }
    status
}

/// Debian's containerd beside `b`, running pods on a network of its own.
/// It needs a pause image: busybox sleeping, built on Berth and served by
/// a registry on loopback.
fn containerd_beside(b: &Berth) -> (Containerd, PodNetwork, Registry) {
    b.load_busybox();
    let reg = Registry::start();
    let pause = format!("{}/cri/pause:1", reg.addr);
    b.docker_stdin(
        &["build", "-q", "-t", &pause, "-"],
        b"FROM busybox\nCMD [\"sleep\", \"86400\"]\n",
    )
    .ok();
    b.docker(&["push", &pause]).ok();
    let mut net = PodNetwork::new("c");
    net.configure(246, b.net.n);
    let ctd = Containerd::start_with(
        &[&reg.addr],
        Some(PodSetup {
            sandbox_image: &pause,
            cni_conf_dir: &net.dir,
        }),
    );
    (ctd, net, reg)
}

#[test]
fn pods_answer_as_containerds_do() {
    let (b, _ours) = berth_with_pod_network();
    let (ctd, _theirs, _reg) = containerd_beside(&b);
    let sock = cri_socket(&b);
    let config = pod_config(&b.root, "web", "uid-1");
    let config = config.to_str().unwrap();
    let both = |args: &[&str]| (crictl(&sock, args), ctd.crictl(args));

    let (ours, theirs) = both(&["runp", config]);
    let (ours, theirs) = (ours.ok().stdout, theirs.ok().stdout);
    let (ours, theirs) = (ours.trim(), theirs.trim());
    let status = |sock: &Path, id: &str| {
        json(crictl(sock, &["inspectp", "-o", "json", id]))["status"].clone()
    };
    assert_eq!(
        comparable(status(&sock, ours)),
        comparable(status(&ctd.socket, theirs))
    );
    let list = |sock: &Path| {
        let mut items = json(crictl(sock, &["pods", "-o", "json"]))["items"].clone();
        for item in items.as_array_mut().unwrap() {
            *item = comparable(item.take());
        }
        items
    };
    assert_eq!(list(&sock), list(&ctd.socket));

    // The same pod again: refused alike, naming the reserved name and
    // the pod that holds it.
    let (again_ours, again_theirs) = both(&["runp", config]);
    assert_ne!(again_ours.code, 0);
    assert_ne!(again_theirs.code, 0);
    let reason = |run: &Run, id: &str| {
        let line = run
            .stderr
            .lines()
            .last()
            .unwrap_or_default()
            .replace(id, "<id>");
        line.split_once("failed to reserve")
            .map(|(_, r)| r.to_string())
            .unwrap_or(line)
    };
    assert_eq!(reason(&again_ours, ours), reason(&again_theirs, theirs));

    // Stopped (twice), then as listed and inspected; removed.
    for _ in 0..2 {
        crictl(&sock, &["stopp", ours]).ok();
        ctd.crictl(&["stopp", theirs]).ok();
    }
    assert_eq!(
        comparable(status(&sock, ours)),
        comparable(status(&ctd.socket, theirs))
    );
    assert_eq!(list(&sock), list(&ctd.socket));
    crictl(&sock, &["rmp", ours]).ok();
    ctd.crictl(&["rmp", theirs]).ok();
    assert_eq!(list(&sock), list(&ctd.socket));
    // Gone: crictl, which asks the pod's status first, fails alike.
    for args in [["inspectp"], ["rmp"], ["stopp"]] {
        let ours = crictl(&sock, &[args[0], ours]);
        let theirs = ctd.crictl(&[args[0], theirs]);
        assert_ne!(ours.code, 0);
        assert_ne!(theirs.code, 0);
        assert!(theirs.stderr.contains("NotFound"), "{theirs:?}");
        assert!(ours.stderr.contains("NotFound"), "{ours:?}");
    }
    drop(ctd);
    b.finish();
}

#[test]
fn a_pod_whose_namespaces_went_with_a_reboot_is_not_ready_and_can_be_removed() {
    let (mut b, net) = berth_with_pod_network();
    let sock = cri_socket(&b);
    let id = runp(&sock, &pod_config(&b.root, "cache", "uid-4"));
    // What a reboot does to the pod while berthd is down: the exec-root
    // (a tmpfs) is empty, so its kept namespaces are gone.
    b.kill_berthd();
    let kept = b.exec_root().join("pods").join(&id);
    for ns in ["net", "ipc", "uts"] {
        let path = kept.join(ns);
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: umount2 with a valid C string.
        assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
        std::fs::remove_file(&path).unwrap();
    }
    b.spawn_berthd();
    let pods = json(crictl(&sock, &["pods", "-o", "json"]));
    assert_eq!(pods["items"][0]["state"], "SANDBOX_NOTREADY", "{pods}");
    // Removing it still gives its address back (the plugins' DEL of a
    // namespace that is gone releases what they hold elsewhere).
    assert_eq!(net.leased().len(), 1);
    crictl(&sock, &["rmp", "--force", &id]).ok();
    assert!(net.leased().is_empty(), "{:?}", net.leased());
    let pods = json(crictl(&sock, &["pods", "-o", "json"]));
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(0), "{pods}");
    b.finish();
}

/// A sysctl as seen inside a pod's network and IPC namespaces: ours by
/// the kept files, containerd's through its pause process.
fn sysctl_in(sock: &Path, id: &str, key: &str) -> String {
    let info = json(crictl(sock, &["inspectp", "-o", "json", id]))["info"].clone();
    let file = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut nsenter = Command::new("nsenter");
    match info["pid"].as_u64() {
        Some(pid) => nsenter.args(["-t", &pid.to_string(), "--net", "--ipc"]),
        None => nsenter
            .arg(format!(
                "--net={}",
                info["namespaces"]["network"].as_str().unwrap()
            ))
            .arg(format!(
                "--ipc={}",
                info["namespaces"]["ipc"].as_str().unwrap()
            )),
    };
    let run: Run = nsenter.args(["cat", &file]).output().unwrap().into();
    run.ok().stdout.trim().to_string()
}

#[test]
fn pod_sysctls_are_set_in_its_namespaces_as_containerd_sets_them() {
    let (b, _ours) = berth_with_pod_network();
    let (ctd, _theirs, _reg) = containerd_beside(&b);
    let sock = cri_socket(&b);
    let write = |name: &str, extra: &str| {
        let path = b.root.join(format!("{name}.json"));
        std::fs::write(
            &path,
            format!(
                r#"{{"metadata":{{"name":"{name}","namespace":"default","uid":"u-{name}"}},"linux":{{{extra}}}}}"#
            ),
        )
        .unwrap();
        path
    };
    let sysctls = [
        ("net.ipv4.ip_unprivileged_port_start", "80"),
        ("kernel.shmmni", "2048"),
    ];
    let wanted: Vec<String> = sysctls
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    let config = write("tuned", &format!(r#""sysctls":{{{}}}"#, wanted.join(",")));
    let ours = runp(&sock, &config);
    let theirs = runp(&ctd.socket, &config);
    for (key, value) in sysctls {
        assert_eq!(sysctl_in(&sock, &ours, key), value, "{key}");
        assert_eq!(sysctl_in(&ctd.socket, &theirs, key), value, "{key}");
    }
    // The node's own values stay as they were.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_ne!(host.trim(), "80");

    // Refused alike: a sysctl of no namespace the pod owns, and one of the
    // network namespace for a pod on the node's network.
    let node = write("node", r#""sysctls":{"vm.swappiness":"10"}"#);
    let host_net = write(
        "hostnet",
        r#""sysctls":{"net.ipv4.ip_forward":"1"},"security_context":{"namespace_options":{"network":2}}"#,
    );
    for config in [node, host_net] {
        let (ours, theirs) = (
            crictl(&sock, &["runp", config.to_str().unwrap()]),
            ctd.crictl(&["runp", config.to_str().unwrap()]),
        );
        assert_ne!(theirs.code, 0, "{theirs:?}");
        assert_ne!(ours.code, 0, "{ours:?}");
        assert!(ours.stderr.contains("sysctl"), "{ours:?}");
    }
    // Nothing of the refused pods is left.
    let pods = json(crictl(&sock, &["pods", "-o", "json"]));
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(1), "{pods}");
    crictl(&sock, &["rmp", "--force", &ours]).ok();
    drop(ctd);
    b.finish();
}
