//! `GET /containers/{id}/attach/ws`: attach over a WebSocket, as browsers
//! and some SDKs do. The session is the same as a hijacked attach (served
//! by `Containers::run_attach` on one end of an in-memory pipe); this module
//! only carries bytes between that pipe and WebSocket messages. As in
//! Docker the output is never multiplexed, and it goes in binary messages
//! from API 1.42 on (text before).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use berth_proto::attach::AttachRequest;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::query::{flag, Query};
use super::{ApiVersion, State};
use crate::error::Result;

pub async fn attach_ws(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    // The container first, as dockerd: a missing one is a 404 whatever
    // the request's headers.
    let c = engine.containers.prepare_attach(&id).await?;
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let detach = crate::containers::io::attach::DetachKeys::parse(
        q.get("detachKeys").map(String::as_str).unwrap_or(""),
    )?;
    let streams = AttachRequest {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    let binary = version >= ApiVersion(1, 42);
    let containers = engine.containers.clone();
    Ok(ws.on_upgrade(move |socket| async move {
        let (session_end, bridge_end) = tokio::io::duplex(64 * 1024);
        let session = containers.run_attach(c, streams, Some(detach), true, session_end);
        tokio::join!(session, bridge(socket, bridge_end, binary));
    }))
}

/// Output from the session becomes messages; messages become its input,
/// and the client's close the end of its input. Ends with the session
/// (after the closing handshake).
async fn bridge(socket: WebSocket, pipe: DuplexStream, binary: bool) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut from_session, mut to_session) = tokio::io::split(pipe);
    let output = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let msg = if binary {
                Message::Binary(buf[..n].to_vec().into())
            } else {
                Message::Text(String::from_utf8_lossy(&buf[..n]).into_owned().into())
            };
            if ws_tx.send(msg).await.is_err() {
                return;
            }
        }
        let _ = ws_tx.send(Message::Close(None)).await;
    };
    let input = async move {
        let mut open = true;
        while let Some(Ok(msg)) = ws_rx.next().await {
            match msg {
                Message::Binary(b) if open => open = to_session.write_all(&b).await.is_ok(),
                Message::Text(t) if open => open = to_session.write_all(t.as_bytes()).await.is_ok(),
                Message::Close(_) => break,
                _ => {}
            }
        }
        if open {
            let _ = to_session.shutdown().await;
        }
    };
    tokio::pin!(output, input);
    let mut input_done = false;
    loop {
        tokio::select! {
            _ = &mut output => {
                // Our close is sent: wait (a little) for the client's, as
                // the closing handshake asks, before the connection goes.
                if !input_done {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut input).await;
                }
                break;
            }
            _ = &mut input, if !input_done => input_done = true,
        }
    }
}
