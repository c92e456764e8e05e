//! The readiness notification of systemd's `Type=notify` services
//! (sd_notify): a datagram `READY=1` to the socket named by `NOTIFY_SOCKET`.
//! berthd and berth-core send it once they serve; `berthd upgrade` listens
//! for it to know that a new process has taken over.

use std::os::unix::net::UnixDatagram;

/// The variable naming the socket.
pub const SOCKET_VAR: &str = "NOTIFY_SOCKET";

/// Takes the socket from the environment, so that processes started later
/// (a core berthd starts) do not inherit it and report in our name.
pub fn take_socket() -> Option<String> {
    let socket = std::env::var(SOCKET_VAR).ok().filter(|s| !s.is_empty());
    std::env::remove_var(SOCKET_VAR);
    socket
}

/// Sends `READY=1` with our pid; errors are the caller's to log.
pub fn ready(socket: &str) -> std::io::Result<()> {
    let message = format!("READY=1\nMAINPID={}\n", std::process::id());
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        // An abstract socket, as systemd usually passes.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(message.as_bytes(), &addr)?;
    } else {
        sock.send_to(message.as_bytes(), socket)?;
    }
    Ok(())
}

/// The pid a `READY=1` message names, if it is one.
pub fn ready_pid(message: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(message).ok()?;
    let mut lines = text.lines();
    if !text.lines().any(|l| l == "READY=1") {
        return None;
    }
    lines.find_map(|l| l.strip_prefix("MAINPID=")?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_listening_socket_with_our_pid() {
        let path = std::env::temp_dir().join(format!("berth-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        ready(path.to_str().unwrap()).unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(ready_pid(&buf[..n]), Some(std::process::id()));
        assert_eq!(ready_pid(b"STATUS=starting\nMAINPID=4\n"), None);
        std::fs::remove_file(&path).unwrap();
    }
}
