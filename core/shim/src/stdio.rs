//! The container's standard streams: pipes without a terminal, the pty
//! master (received from the runtime over the console socket) with one.

#![allow(unsafe_code)]

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Our ends of the container's streams.
#[derive(Default)]
pub struct Streams {
    /// stdout pipe read end, or the pty master; none before an exec starts.
    pub out: Option<OwnedFd>,
    /// stderr pipe read end; none with a terminal.
    pub err: Option<OwnedFd>,
    /// Where stdin goes: the pipe's write end, or a duplicate of the pty master.
    pub stdin: Option<OwnedFd>,
}

/// The ends handed to the runtime (and so to the container).
pub struct ChildEnds {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// Output pipes of 1 MiB (the default 64 KiB makes a chatty container
/// wait on the shim every few lines); best effort, the limit is
/// /proc/sys/fs/pipe-max-size.
fn widen(fd: &OwnedFd) {
    let _ = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
}

/// Pipes for a container without a terminal.
pub fn pipes(want_stdin: bool) -> Result<(Streams, ChildEnds), String> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    widen(&out_r);
    widen(&err_r);
    let (stdin_ours, stdin_child) = if want_stdin {
        let (r, w) = pipe()?;
        (Some(w), Some(r))
    } else {
        (None, None)
    };
    Ok((
        Streams {
            out: Some(out_r),
            err: Some(err_r),
            stdin: stdin_ours,
        },
        ChildEnds {
            stdin: stdin_child,
            stdout: out_w,
            stderr: err_w,
        },
    ))
}

/// Accepts the runtime's connection on the console socket and takes the pty
/// master it sends (SCM_RIGHTS).
pub fn receive_console(listener: &UnixListener) -> Result<OwnedFd, String> {
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("console socket accept: {e}"))?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("console socket recvmsg: {e}"))?;
    for c in msg.cmsgs().map_err(|e| format!("console socket: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err("the runtime sent no terminal on the console socket".into())
}

pub fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own; failure leaves it blocking, which
    // is only slower, never unsound.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Sets the terminal size of the pty behind `fd`.
pub fn resize(fd: RawFd, rows: u16, cols: u16) -> Result<(), String> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(format!("resize: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn remove_socket(path: &Path) {
    let _ = std::fs::remove_file(path);
}
