//! Passing the API listener between cores: one message with the
//! descriptor attached (SCM_RIGHTS), on the handover connection.

#![allow(unsafe_code)]

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// Sends `bytes` with `fd` attached.
pub async fn send(stream: &UnixStream, bytes: &[u8], fd: RawFd) -> std::io::Result<()> {
    let fds = [fd];
    let mut sent = 0;
    while sent < bytes.len() {
        let n = stream
            .async_io(Interest::WRITABLE, || {
                // The descriptor rides on the first piece only.
                let cmsgs: &[ControlMessage] = if sent == 0 {
                    &[ControlMessage::ScmRights(&fds)]
                } else {
                    &[]
                };
                sendmsg::<()>(
                    stream.as_raw_fd(),
                    &[IoSlice::new(&bytes[sent..])],
                    cmsgs,
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(std::io::Error::from)
            })
            .await?;
        sent += n;
    }
    Ok(())
}

/// Receives one message (the sender writes a single line and waits for an
/// answer, so one read gets all of it) and the descriptor attached to it.
pub async fn recv(stream: &UnixStream) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fd) = stream
        .async_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            let mut fd = None;
            for c in msg.cmsgs().map_err(std::io::Error::from)? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    fd = fds.first().copied();
                }
            }
            Ok((msg.bytes, fd))
        })
        .await?;
    buf.truncate(n);
    // SAFETY: the kernel installed this descriptor in our table for this
    // message; nothing else refers to it.
    let fd = fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    Ok((buf, fd))
}
