//! Networks and published ports through the docker CLI: the default
//! bridge (an address, no name resolution), user-defined networks with
//! IPAM, aliases and DNS, connect/disconnect of a running container, the
//! host/none/container: modes, -p/-P and `docker port`, network state that
//! outlives a killed berthd, and clean-up (no namespace, bridge or rule
//! left). Traffic goes only between containers on networks the test made
//! and to ports published on 127.0.0.1.

use std::process::Command;

use berth_compat_tests::{free_port, http_get, unsafe_kill, wait_exit, Berth};

/// `http_get` once the server listens: a container's process is started
/// when `docker run -d` returns, but httpd binds its port a moment later.
fn http_get_served(port: u16, path: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(body) = http_get(port, path) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing answers on 127.0.0.1:{port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A web server (busybox httpd) serving its own hostname file.
fn web(b: &Berth, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    b.docker(&args).ok();
    // Ready once it answers from inside (it binds a moment after start).
    b.docker(&[
        "exec",
        name,
        "timeout",
        "10",
        "sh",
        "-c",
        "until wget -q -O /dev/null http://127.0.0.1/hostname; do usleep 20000; done",
    ])
    .ok();
}

fn ipv4_of(b: &Berth, container: &str, iface: &str) -> String {
    let out = b
        .docker(&["exec", container, "ip", "-4", "-o", "addr", "show", iface])
        .ok();
    out.out()
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// What `nslookup name` in a fresh container on `network` resolves to
/// (None when the name is unknown there).
fn resolve(b: &Berth, network: &str, name: &str) -> Option<String> {
    let r = b.docker(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "nslookup",
        name,
    ]);
    if r.code != 0 {
        return None;
    }
    // The answer's "Address: x" lines come after "Name:".
    r.stdout
        .split_once("Name:")
        .and_then(|(_, rest)| rest.lines().find_map(|l| l.strip_prefix("Address: ")))
        .map(|a| a.trim().to_string())
}

#[test]
fn default_bridge_gives_an_address_but_no_names() {
    let b = Berth::start();
    b.load_busybox();
    let net = b
        .docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .ok();
    let mut names: Vec<&str> = net.out().lines().collect();
    names.sort();
    assert_eq!(names, ["bridge bridge", "host host", "none null"]);
    let subnet = format!("10.250.{}.", b.net.n);
    let bridge = b
        .docker(&[
            "network",
            "inspect",
            "bridge",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}} {{index .Options \"com.docker.network.bridge.name\"}}",
        ])
        .ok();
    assert_eq!(
        bridge.out(),
        format!("{subnet}0/24 {subnet}1 berthtest{}", b.net.n)
    );

    web(&b, "srv", &[]);
    let ip = b
        .docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "srv"])
        .ok()
        .out()
        .to_string();
    assert!(ip.starts_with(&subnet), "{ip}");
    assert_eq!(ipv4_of(&b, "srv", "eth0"), format!("{ip}/24"));
    // /etc/hosts names the container's own address, as Docker's does.
    let hosts = b.docker(&["exec", "srv", "cat", "/etc/hosts"]).ok();
    let id12 = b.docker(&["inspect", "-f", "{{.Id}}", "srv"]).ok().out()[..12].to_string();
    assert!(
        hosts.out().lines().any(|l| l == format!("{ip}\t{id12}")),
        "{}",
        hosts.out()
    );
    // Reachable by address from another container on the bridge...
    let body = b
        .docker(&[
            "run",
            "--rm",
            "busybox",
            "wget",
            "-qO-",
            &format!("http://{ip}/hostname"),
        ])
        .ok();
    assert_eq!(body.out(), id12);
    // ...but the default bridge resolves no container names.
    assert_eq!(resolve(&b, "bridge", "srv"), None);

    let rm = b.docker(&["network", "rm", "bridge"]);
    assert_ne!(rm.code, 0);
    assert!(
        rm.stderr
            .contains("bridge is a pre-defined network and cannot be removed"),
        "{}",
        rm.stderr
    );
    b.finish();
}

#[test]
fn user_defined_networks_have_ipam_names_and_aliases() {
    let b = Berth::start();
    b.load_busybox();
    let sub = format!("10.251.{}", b.net.n);
    b.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("{sub}.0/24"),
        "--gateway",
        &format!("{sub}.254"),
        "--ip-range",
        &format!("{sub}.64/26"),
        "--label",
        "team=web",
        "front",
    ])
    .ok();
    b.docker(&["network", "create", "back"]).ok();
    let pool = format!("10.{}.", 128 + b.net.n);
    let back = b
        .docker(&[
            "network",
            "inspect",
            "back",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}}",
        ])
        .ok();
    assert!(back.out().starts_with(&pool), "{}", back.out());

    // Refusals, each storing nothing.
    let dup = b.docker(&["network", "create", "front"]);
    assert!(
        dup.stderr
            .contains("network with name front already exists"),
        "{}",
        dup.stderr
    );
    let overlap = b.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("{sub}.128/25"),
        "x1",
    ]);
    assert!(
        overlap.stderr.contains("Pool overlaps"),
        "{}",
        overlap.stderr
    );
    let bad = b.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("{sub}.5/24"),
        "x2",
    ]);
    assert!(
        bad.stderr.contains(&format!("it should be {sub}.0/24")),
        "{}",
        bad.stderr
    );
    let gw = b.docker(&[
        "network",
        "create",
        "--subnet",
        "10.9.9.0/24",
        "--gateway",
        "10.9.8.1",
        "x3",
    ]);
    assert!(
        gw.stderr.contains("no matching subnet for gateway"),
        "{}",
        gw.stderr
    );
    assert_eq!(
        b.docker(&["network", "ls", "-q", "--filter", "name=x"])
            .ok()
            .out(),
        ""
    );

    // ls filters.
    let ls = |f: &str| {
        let mut v: Vec<String> = b
            .docker(&["network", "ls", "--format", "{{.Name}}", "--filter", f])
            .ok()
            .out()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ls("label=team=web"), ["front"]);
    assert_eq!(ls("type=custom"), ["back", "front"]);
    assert_eq!(ls("driver=null"), ["none"]);

    // Addresses: from the ip-range, or the one asked for.
    web(
        &b,
        "api",
        &["--network", "front", "--network-alias", "service-a"],
    );
    b.docker(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        "front",
        "--ip",
        &format!("{sub}.10"),
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    assert_eq!(ipv4_of(&b, "api", "eth0"), format!("{sub}.65/24"));
    assert_eq!(ipv4_of(&b, "fixed", "eth0"), format!("{sub}.10/24"));
    let taken = b.docker(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--ip",
        &format!("{sub}.10"),
        "busybox",
        "true",
    ]);
    assert!(
        taken.stderr.contains("Address already in use"),
        "{}",
        taken.stderr
    );
    let on_bridge = b.docker(&["run", "--rm", "--ip", "10.250.0.9", "busybox", "true"]);
    assert!(
        on_bridge
            .stderr
            .contains("user specified IP address is supported on user defined networks only"),
        "{}",
        on_bridge.stderr
    );

    // Names: the container's, its alias and short id, on its network only.
    let api_ip = format!("{sub}.65");
    assert_eq!(
        resolve(&b, "front", "api").as_deref(),
        Some(api_ip.as_str())
    );
    assert_eq!(
        resolve(&b, "front", "service-a").as_deref(),
        Some(api_ip.as_str())
    );
    let id12 = b.docker(&["inspect", "-f", "{{.Id}}", "api"]).ok().out()[..12].to_string();
    assert_eq!(
        resolve(&b, "front", &id12).as_deref(),
        Some(api_ip.as_str())
    );
    assert_eq!(resolve(&b, "back", "api"), None);
    // And a client reaches the server by name (busybox nc resolves names).
    let got = b
        .docker(&[
            "run",
            "--rm",
            "--network",
            "front",
            "busybox",
            "sh",
            "-c",
            "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc service-a 80 | tail -n 1",
        ])
        .ok();
    assert_eq!(got.out(), id12);

    // Inspect shows the members; rm refuses while they run.
    let members = b
        .docker(&[
            "network",
            "inspect",
            "front",
            "-f",
            "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}",
        ])
        .ok();
    let mut m: Vec<&str> = members.out().split_whitespace().collect();
    m.sort();
    assert_eq!(
        m,
        [format!("api={sub}.65/24"), format!("fixed={sub}.10/24")]
    );
    let aliases = b
        .docker(&["inspect", "-f", "{{json .NetworkSettings.Networks.front.Aliases}} {{.NetworkSettings.Networks.front.Gateway}}", "api"])
        .ok();
    assert_eq!(aliases.out(), format!("[\"service-a\"] {sub}.254"));
    let busy = b.docker(&["network", "rm", "front"]);
    assert!(
        busy.stderr.contains("has active endpoints"),
        "{}",
        busy.stderr
    );

    b.docker(&["rm", "-f", "api", "fixed"]).ok();
    b.docker(&["network", "rm", "front"]).ok();
    let pruned = b.docker(&["network", "prune", "-f"]).ok();
    assert!(pruned.out().contains("back"), "{}", pruned.out());
    assert_eq!(ls("type=custom"), Vec::<String>::new());
    b.finish();
}

#[test]
fn running_containers_connect_and_disconnect() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["network", "create", "one"]).ok();
    b.docker(&["network", "create", "two"]).ok();
    web(&b, "srv", &["--network", "one"]);
    b.docker(&["network", "connect", "--alias", "srv-two", "two", "srv"])
        .ok();
    let ip2 = ipv4_of(&b, "srv", "eth1");
    let ip2 = ip2.split('/').next().unwrap().to_string();
    assert!(!ip2.is_empty());
    assert_eq!(resolve(&b, "two", "srv-two").as_deref(), Some(ip2.as_str()));
    let nets = b
        .docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "srv",
        ])
        .ok();
    assert_eq!(nets.out(), "one two");
    let again = b.docker(&["network", "connect", "two", "srv"]);
    assert!(
        again.stderr.contains("already exists in network two"),
        "{}",
        again.stderr
    );

    b.docker(&["network", "disconnect", "two", "srv"]).ok();
    let gone = b.docker(&["exec", "srv", "ip", "link", "show", "eth1"]);
    assert_ne!(gone.code, 0, "eth1 still there: {}", gone.stdout);
    assert_eq!(resolve(&b, "two", "srv-two"), None);
    let not = b.docker(&["network", "disconnect", "two", "srv"]);
    assert!(
        not.stderr.contains("is not connected to network two"),
        "{}",
        not.stderr
    );
    // A running container from the default bridge, which resolves no
    // names, learns its new network's names once connected (Docker points
    // its resolv.conf at the embedded DNS server then).
    b.docker(&["run", "-d", "--name", "lone", "busybox", "sleep", "1000"])
        .ok();
    let before = b.docker(&["exec", "lone", "nslookup", "srv"]);
    assert_ne!(
        before.code, 0,
        "resolved on the default bridge: {}",
        before.stdout
    );
    b.docker(&["network", "connect", "one", "lone"]).ok();
    let ip1 = ipv4_of(&b, "srv", "eth0");
    let ip1 = ip1.split('/').next().unwrap();
    let after = b.docker(&["exec", "lone", "nslookup", "srv"]).ok().stdout;
    assert!(after.contains(&format!("Address: {ip1}")), "{after}");

    // A stopped container can be connected; it joins at its next start.
    b.docker(&["stop", "-t", "0", "srv"]).ok();
    b.docker(&["network", "connect", "two", "srv"]).ok();
    b.docker(&["start", "srv"]).ok();
    assert!(!ipv4_of(&b, "srv", "eth1").is_empty());
    b.finish();
}

#[test]
fn host_none_and_container_network_modes() {
    let b = Berth::start();
    b.load_busybox();
    let links = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "ls", "/sys/class/net"]);
        let mut v: Vec<String> = b
            .docker(&a)
            .ok()
            .out()
            .split_whitespace()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(links(&["--network", "none"]), ["lo"]);
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    // Compare interfaces that cannot come and go while the test runs.
    let host_lo_eth: Vec<&String> = host
        .iter()
        .filter(|n| *n == "lo" || n.starts_with("eth"))
        .collect();
    let seen = links(&["--network", "host"]);
    for n in &host_lo_eth {
        assert!(
            seen.contains(n),
            "host interface {n} missing in --network host: {seen:?}"
        );
    }
    let created = b.docker(&["create", "--network", "none", "busybox"]).ok();
    let mode = b
        .docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.NetworkMode}} {{json .NetworkSettings.Networks.none.IPAddress}}",
            created.out(),
        ])
        .ok();
    assert_eq!(mode.out(), "none \"\"");

    web(&b, "donor", &[]);
    let donor_ip = ipv4_of(&b, "donor", "eth0");
    let joined = b
        .docker(&["run", "--rm", "--network", "container:donor", "busybox", "sh", "-c",
            "ip -4 -o addr show eth0 | awk '{print $4}'; wget -qO- http://127.0.0.1/hostname; hostname"])
        .ok();
    let id12 = b.docker(&["inspect", "-f", "{{.Id}}", "donor"]).ok().out()[..12].to_string();
    assert_eq!(joined.out(), format!("{donor_ip}\n{id12}\n{id12}"));
    let missing = b.docker(&[
        "run",
        "--rm",
        "--network",
        "container:nosuch",
        "busybox",
        "true",
    ]);
    assert!(
        missing.stderr.contains("No such container: nosuch"),
        "{}",
        missing.stderr
    );
    let unknown = b.docker(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert!(
        unknown.stderr.contains("network nosuchnet not found"),
        "{}",
        unknown.stderr
    );
    b.finish();
}

#[test]
fn published_ports_and_docker_port() {
    let b = Berth::start();
    b.load_busybox();
    let fixed = free_port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    web(
        &b,
        "pub",
        &[
            "-p",
            &format!("127.0.0.1:{fixed}:80"),
            "-p",
            "127.0.0.1::80",
            "--expose",
            "7000",
            "-P",
            "-p",
            &format!("127.0.0.1:{udp}:53/udp"),
        ],
    );
    let id12 = b.docker(&["inspect", "-f", "{{.Id}}", "pub"]).ok().out()[..12].to_string();
    assert_eq!(http_get_served(fixed, "/hostname"), format!("{id12}\n"));
    let ports = b.docker(&["port", "pub"]).ok();
    let lines: Vec<&str> = ports.out().lines().collect();
    assert!(
        lines.contains(&format!("80/tcp -> 127.0.0.1:{fixed}").as_str()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("53/udp -> 127.0.0.1:{udp}").as_str()),
        "{lines:?}"
    );
    // The random one (and -P's, on berthd's --ip 127.0.0.1) serve too.
    let random: Vec<u16> = lines
        .iter()
        .filter(|l| l.starts_with("80/tcp") && !l.ends_with(&format!(":{fixed}")))
        .map(|l| l.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(random.len(), 1, "{lines:?}");
    assert_eq!(http_get_served(random[0], "/hostname"), format!("{id12}\n"));
    let p7000 = b.docker(&["port", "pub", "7000"]).ok();
    assert!(p7000.out().starts_with("127.0.0.1:"), "{}", p7000.out());
    let ps = b.docker(&["ps", "--format", "{{.Ports}}"]).ok();
    assert!(
        ps.out().contains(&format!("127.0.0.1:{fixed}->80/tcp")),
        "{}",
        ps.out()
    );

    // A second container cannot take the same host port.
    let clash = b.docker(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{fixed}:80"),
        "busybox",
        "true",
    ]);
    assert!(
        clash.stderr.contains("port is already allocated"),
        "{}",
        clash.stderr
    );
    // Once the container is gone, so is the forwarding.
    b.docker(&["rm", "-f", "pub"]).ok();
    assert_eq!(http_get(fixed, "/hostname"), None);
    b.docker(&["start", "clash"]).ok();
    b.finish();
}

#[test]
fn network_state_outlives_a_killed_engine_and_is_cleaned_after() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["network", "create", "keep"]).ok();
    let port = free_port();
    web(
        &b,
        "srv",
        &["--network", "keep", "-p", &format!("127.0.0.1:{port}:80")],
    );
    b.docker(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "keep",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let id = b
        .docker(&["inspect", "-f", "{{.Id}}", "srv"])
        .ok()
        .out()
        .to_string();
    let bridge = format!(
        "br-{}",
        &b.docker(&["network", "inspect", "-f", "{{.Id}}", "keep"])
            .ok()
            .out()[..12]
    );

    b.kill_berthd();
    // No engine: the published port and the bridge still work.
    assert_eq!(
        http_get_served(port, "/hostname"),
        format!("{}\n", &id[..12])
    );
    b.spawn_berthd();
    b.wait_for_core();
    let looked_up = b.docker(&["exec", "cli", "nslookup", "srv"]).ok();
    assert!(
        looked_up.out().contains("Name:\tsrv"),
        "{}",
        looked_up.out()
    );
    assert_eq!(
        b.docker(&["port", "srv", "80"]).ok().out(),
        format!("127.0.0.1:{port}")
    );

    // A container that dies while no engine runs: its network goes when
    // the next engine learns of the exit.
    let pid = b.pid_of("srv");
    b.kill_berthd();
    unsafe_kill(pid, libc::SIGKILL);
    wait_exit(pid);
    b.spawn_berthd();
    b.inspect_until("srv", "{{.State.Status}}", "exited");
    let netns = b.exec_root().join("netns").join(&id);
    assert!(!netns.exists(), "{} left behind", netns.display());
    assert_eq!(http_get(port, "/hostname"), None);
    let rules = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains(&id[..12]),
        "rules of the dead container left:\n{rules}"
    );

    // Removing everything leaves no bridge, veth or namespace.
    b.docker(&["rm", "-f", "srv", "cli"]).ok();
    b.docker(&["network", "rm", "keep"]).ok();
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists(),
        "{bridge} left"
    );
    let default_bridge = format!("berthtest{}", b.net.n);
    assert!(!std::path::Path::new("/sys/class/net")
        .join(&default_bridge)
        .exists());
    let left: Vec<_> = std::fs::read_dir(b.exec_root().join("netns"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    b.finish();
}

#[test]
fn networks_of_a_lost_boot_are_removed_at_the_next_start() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["network", "create", "lost"]).ok();
    let port = free_port();
    web(
        &b,
        "srv",
        &["--network", "lost", "-p", &format!("127.0.0.1:{port}:80")],
    );
    let id = b
        .docker(&["inspect", "-f", "{{.Id}}", "srv"])
        .ok()
        .out()
        .to_string();
    let bridge = format!(
        "br-{}",
        &b.docker(&["network", "inspect", "-f", "{{.Id}}", "lost"])
            .ok()
            .out()[..12]
    );
    assert!(std::path::Path::new("/sys/class/net")
        .join(&bridge)
        .exists());
    // As after a reboot: processes, mounts and the exec-root are gone, and
    // with the container's namespace its end of the veth; the host side
    // (bridge, rules, DNS entries) is the next engine's to remove.
    b.kill_berthd();
    b.power_off();
    b.spawn_berthd();
    b.inspect_until("srv", "{{.State.Status}}", "exited");
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists(),
        "{bridge} left"
    );
    let rules = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains(&id),
        "rules of the lost container left:\n{rules}"
    );
    // And it starts again on the same network.
    b.docker(&["start", "srv"]).ok();
    assert_eq!(
        http_get_served(port, "/hostname"),
        format!("{}\n", &id[..12])
    );
    b.finish();
}

#[test]
fn internal_networks_reach_each_other_but_have_no_way_out() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["network", "create", "--internal", "closed"])
        .ok();
    let subnet = b
        .docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            "closed",
        ])
        .ok()
        .out()
        .to_string();
    let prefix = subnet.rsplit_once('.').unwrap().0.to_string();
    assert_eq!(
        b.docker(&["network", "inspect", "-f", "{{.Internal}}", "closed"])
            .ok()
            .out(),
        "true"
    );
    web(&b, "inside", &["--network", "closed"]);
    // Names resolve and the peer answers on the internal network...
    let ip = resolve(&b, "closed", "inside").expect("inside resolves");
    assert!(
        ip.starts_with(&format!("{prefix}.")),
        "{ip} not in {subnet}"
    );
    let hostname = b
        .docker(&["inspect", "-f", "{{.Config.Hostname}}", "inside"])
        .ok()
        .out()
        .to_string();
    let fetched = b
        .docker(&[
            "run",
            "--rm",
            "--network",
            "closed",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{ip}/hostname"),
        ])
        .ok();
    assert_eq!(fetched.out(), hostname);
    // ...but there is no default route and no masquerading for the subnet.
    let routes = b
        .docker(&[
            "run",
            "--rm",
            "--network",
            "closed",
            "busybox",
            "ip",
            "route",
        ])
        .ok();
    assert!(!routes.out().contains("default"), "{}", routes.stdout);
    let nat = std::process::Command::new("iptables")
        .args(["-w", "-t", "nat", "-S", "POSTROUTING"])
        .output()
        .unwrap();
    let nat = String::from_utf8_lossy(&nat.stdout);
    assert!(!nat.contains(&subnet), "{nat}");
    b.finish();
}

#[test]
fn a_hostname_conflicts_with_another_containers_network() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "donor", "busybox", "sleep", "1000"])
        .ok();
    let r = b.docker(&[
        "run",
        "--rm",
        "--network",
        "container:donor",
        "--hostname",
        "mine",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("conflicting options: hostname and the network mode"),
        "{}",
        r.stderr
    );
    b.finish();
}

/// IPv6 on a user-defined network (`--ipv6 --subnet`): containers get an
/// address of the subnet (the one asked with --ip6, else the first free
/// after the gateway, dockerd's order), /etc/hosts names it, aardvark-dns
/// answers AAAA for container names, and traffic flows over IPv6.
#[test]
fn ipv6_networks_give_addresses_names_and_traffic() {
    let b = Berth::start();
    b.load_busybox();
    let prefix = b.net.ipv6_prefix();
    let subnet = format!("{prefix}:6::/64");
    b.docker(&["network", "create", "--ipv6", "--subnet", &subnet, "six"])
        .ok();
    assert_eq!(
        b.docker(&[
            "network",
            "inspect",
            "-f",
            "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
            "six"
        ])
        .ok()
        .out()
        .split_whitespace()
        .filter(|w| *w == "true" || w.contains(':'))
        .collect::<Vec<_>>(),
        ["true", subnet.as_str()]
    );
    let asked = format!("{prefix}:6::80");
    web(&b, "web6", &["--network", "six", "--ip6", &asked]);
    b.docker(&[
        "run",
        "-d",
        "--name",
        "other6",
        "--network",
        "six",
        "busybox",
        "top",
    ])
    .ok();
    let settings = |c: &str| {
        b.docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}} {{.IPv6Gateway}} asked:{{with .IPAMConfig}}{{.IPv6Address}}{{end}}{{end}}",
            c,
        ])
        .ok()
        .out()
        .to_string()
    };
    assert_eq!(
        settings("web6"),
        format!("{asked}/64 {prefix}:6::1 asked:{asked}")
    );
    assert_eq!(
        settings("other6"),
        format!("{prefix}:6::2/64 {prefix}:6::1 asked:")
    );
    // The container's own interface and hosts file carry the address.
    let addr = b
        .docker(&[
            "exec", "web6", "ip", "-6", "-o", "addr", "show", "eth0", "scope", "global",
        ])
        .ok();
    assert!(
        addr.out().contains(&format!("{asked}/64")),
        "{}",
        addr.stdout
    );
    let hosts = b.docker(&["exec", "web6", "cat", "/etc/hosts"]).ok();
    let hostname = b
        .docker(&["inspect", "-f", "{{.Config.Hostname}}", "web6"])
        .ok()
        .out()
        .to_string();
    assert!(
        hosts.out().contains(&format!("{asked}\t{hostname}")),
        "{}",
        hosts.stdout
    );
    // aardvark-dns answers the name's AAAA record...
    let aaaa = b
        .docker(&[
            "run",
            "--rm",
            "--network",
            "six",
            "busybox",
            "nslookup",
            "-type=AAAA",
            "web6",
        ])
        .ok();
    assert!(
        aaaa.out().contains(&format!("Address: {asked}")),
        "{}",
        aaaa.stdout
    );
    // ...and the web server answers over IPv6, by name.
    let fetched = b
        .docker(&[
            "exec",
            "other6",
            "wget",
            "-q",
            "-O",
            "-",
            "http://web6/hostname",
        ])
        .ok();
    assert_eq!(fetched.out(), hostname);
    let fetched6 = b
        .docker(&[
            "exec",
            "other6",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://[{asked}]/hostname"),
        ])
        .ok();
    assert_eq!(fetched6.out(), hostname);
    // The address asked for is taken while web6 runs.
    b.docker(&[
        "create",
        "--name",
        "dup6",
        "--network",
        "six",
        "--ip6",
        &asked,
        "busybox",
    ])
    .ok();
    let dup = b.docker(&["start", "dup6"]);
    assert_ne!(dup.code, 0);
    assert!(
        dup.stderr.contains("Address already in use"),
        "{}",
        dup.stderr
    );
    b.docker(&["rm", "-f", "web6", "other6", "dup6"]).ok();
    b.docker(&["network", "rm", "six"]).ok();
    b.finish();
}

/// A user-defined network's Aliases by API version: up to 1.44 dockerd
/// lists the short container id among them once the container has started
/// (or connected); from 1.45 they are what the client gave and the short
/// id is in DNSNames. Before the first start neither has it. (The
/// differential corpus checks 1.41 against dockerd itself.)
#[test]
fn endpoint_aliases_follow_the_api_version() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["network", "create", "aliased"]).ok();
    let id = b
        .docker(&[
            "create",
            "--network",
            "aliased",
            "--network-alias",
            "web",
            "busybox",
            "sleep",
            "60",
        ])
        .ok()
        .out()
        .to_string();
    let short = &id[..12];
    let endpoint = |version: &str| {
        let r = b.api("GET", &format!("/{version}/containers/{id}/json"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["NetworkSettings"]["Networks"]["aliased"].clone()
    };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(strings(&endpoint("v1.41")["Aliases"]), ["web"]);
    assert_eq!(strings(&endpoint("v1.50")["Aliases"]), ["web"]);
    assert!(endpoint("v1.50")["DNSNames"].is_null());
    b.docker(&["start", &id]).ok();
    assert_eq!(strings(&endpoint("v1.41")["Aliases"]), ["web", short]);
    assert!(endpoint("v1.41").get("DNSNames").is_none());
    assert_eq!(strings(&endpoint("v1.44")["Aliases"]), ["web", short]);
    assert_eq!(strings(&endpoint("v1.45")["Aliases"]), ["web"]);
    let names = strings(&endpoint("v1.50")["DNSNames"]);
    assert!(
        names.contains(&short.to_string()) && names.contains(&"web".to_string()),
        "{names:?}"
    );
    // `docker ps` lists no aliases, as dockerd's list does.
    let list = b.api("GET", "/v1.41/containers/json", None).json();
    assert!(list[0]["NetworkSettings"]["Networks"]["aliased"]["Aliases"].is_null());
    b.docker(&["rm", "-f", &id]).ok();
    b.docker(&["network", "rm", "aliased"]).ok();
    b.finish();
}
