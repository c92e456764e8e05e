//! The JSON progress messages of a pull or push, as Docker's stream
//! formatter writes them (`{"status","id","progressDetail","progress"}`,
//! errors with `errorDetail` and the legacy `error`), kept in order so that
//! every client following the same operation (two `docker pull`s of one
//! image share one pull) sees the whole stream from its start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;

/// How often a layer's byte count is reported while it moves.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// One message of the stream: Go's jsonmessage.JSONMessage, its fields in
/// its order, the empty ones left out (`omitempty`).
#[derive(Serialize, Default)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    progress_detail: Option<Detail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    error_detail: Option<ErrorDetail<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aux: Option<Aux<'a>>,
}

#[derive(Serialize, Default)]
struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Aux<'a> {
    Pushed {
        #[serde(rename = "Tag")]
        tag: &'a str,
        #[serde(rename = "Digest")]
        digest: &'a str,
        #[serde(rename = "Size")]
        size: usize,
    },
    Built {
        #[serde(rename = "ID")]
        id: &'a str,
    },
}

pub struct Progress {
    messages: Mutex<Vec<Bytes>>,
    /// Number of messages so far, and whether the operation has ended.
    count: watch::Sender<(usize, bool)>,
    last_detail: Mutex<HashMap<String, Instant>>,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            messages: Mutex::new(Vec::new()),
            count: watch::channel((0, false)).0,
            last_detail: Mutex::new(HashMap::new()),
        })
    }

    fn push(&self, message: Message) {
        let mut line = serde_json::to_string(&message).unwrap_or_default();
        line.push_str("\r\n");
        self.relay(Bytes::from(line));
    }

    /// Messages already formatted (another operation's, being relayed).
    pub fn relay(&self, chunk: Bytes) {
        let mut msgs = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        msgs.push(chunk);
        let n = msgs.len();
        drop(msgs);
        self.count.send_modify(|c| c.0 = n);
    }

    /// One progress for several operations run one after the other (the
    /// `--all-tags` forms of pull and push): `start` begins each; the first
    /// failure ends the sequence.
    pub fn sequence<T, F, Fut>(items: Vec<T>, start: F) -> Arc<Progress>
    where
        T: Send + 'static,
        F: Fn(T) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = crate::error::Result<Arc<Progress>>> + Send,
    {
        let combined = Progress::new();
        let out = combined.clone();
        tokio::spawn(async move {
            for item in items {
                match start(item).await {
                    Ok(p) => {
                        if out.relay_all(p).await {
                            break;
                        }
                    }
                    Err(e) => {
                        out.error(&e.to_string());
                        break;
                    }
                }
            }
            out.finish();
        });
        combined
    }

    /// Relays everything `other` says until it ends; true if it ended
    /// with an error message.
    pub async fn relay_all(&self, other: Arc<Progress>) -> bool {
        use futures_util::StreamExt;
        let mut failed = false;
        let mut s = std::pin::pin!(other.follow());
        while let Some(Ok(chunk)) = s.next().await {
            failed |= chunk.windows(14).any(|w| w == b"\"errorDetail\"");
            self.relay(chunk);
        }
        failed
    }

    /// `{"status": …}` for the whole operation.
    pub fn status(&self, status: &str) {
        self.push(Message {
            status: Some(status),
            ..Default::default()
        });
    }

    /// `{"status": …, "id": …}` with an empty progressDetail, for one layer.
    pub fn layer(&self, id: &str, status: &str) {
        self.push(Message {
            status: Some(status),
            progress_detail: Some(Detail::default()),
            id: Some(id),
            ..Default::default()
        });
    }

    /// `{"status": "Pulling from …", "id": tag}`: no progressDetail.
    pub fn header(&self, id: &str, status: &str) {
        self.push(Message {
            status: Some(status),
            id: Some(id),
            ..Default::default()
        });
    }

    /// A byte count for one layer, at most every [`PROGRESS_INTERVAL`]
    /// unless `force`.
    pub fn bytes(&self, id: &str, status: &str, current: u64, total: u64, force: bool) {
        {
            let mut last = self.last_detail.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if !force
                && last
                    .get(id)
                    .is_some_and(|t| now.duration_since(*t) < PROGRESS_INTERVAL)
            {
                return;
            }
            last.insert(id.to_string(), now);
        }
        self.push(Message {
            status: Some(status),
            progress_detail: Some(Detail {
                current: Some(current),
                total: Some(total),
            }),
            progress: Some(bar(current, total)),
            id: Some(id),
            ..Default::default()
        });
    }

    /// The pushed manifest: `{"progressDetail":{},"aux":{Tag,Digest,Size}}`.
    pub fn pushed(&self, tag: &str, digest: &str, size: usize) {
        self.push(Message {
            progress_detail: Some(Detail::default()),
            aux: Some(Aux::Pushed { tag, digest, size }),
            ..Default::default()
        });
    }

    /// The built image's id, as BuildKit-less dockerd tells it.
    pub fn built(&self, image_id: &str) {
        self.push(Message {
            id: Some("moby.image.id"),
            aux: Some(Aux::Built { id: image_id }),
            ..Default::default()
        });
    }

    pub fn error(&self, message: &str) {
        self.push(Message {
            error_detail: Some(ErrorDetail {
                code: None,
                message,
            }),
            error: Some(message),
            ..Default::default()
        });
    }

    /// An error with a code (a build step's exit status, which the CLI
    /// exits with).
    pub fn error_with_code(&self, message: &str, code: i64) {
        self.push(Message {
            error_detail: Some(ErrorDetail {
                code: Some(code),
                message,
            }),
            error: Some(message),
            ..Default::default()
        });
    }

    /// `{"stream": …}`: text for the client's terminal (build output).
    pub fn stream(&self, text: &str) {
        self.push(Message {
            stream: Some(text),
            ..Default::default()
        });
    }

    pub fn finish(&self) {
        self.count.send_modify(|c| c.1 = true);
    }

    /// Every message from the first, then new ones as they come, ending
    /// when the operation ends.
    pub fn follow(self: Arc<Self>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        let rx = self.count.subscribe();
        futures_util::stream::unfold((self, rx, 0usize), |(this, mut rx, sent)| async move {
            loop {
                let (n, done) = *rx.borrow_and_update();
                if sent < n {
                    let batch: Vec<Bytes> =
                        this.messages.lock().unwrap_or_else(|p| p.into_inner())[sent..n].to_vec();
                    let chunk: Vec<u8> = batch.concat();
                    return Some((Ok(Bytes::from(chunk)), (this, rx, n)));
                }
                if done || rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }

    /// Waits for the operation's end; its error message, if it failed
    /// (for callers without a progress stream, like the CRI's PullImage).
    pub async fn finished(&self) -> Result<(), String> {
        let mut rx = self.count.subscribe();
        while !rx.borrow_and_update().1 {
            if rx.changed().await.is_err() {
                break;
            }
        }
        let failed = self
            .lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["error"].as_str().map(str::to_string));
        failed.map_or(Ok(()), Err)
    }

    /// The messages so far (for tests and for callers that wait to the end).
    pub fn lines(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|b| String::from_utf8_lossy(b).trim_end().to_string())
            .collect()
    }
}

/// Docker's text bar: `[=====>      ]  1.05MB/2.1MB`.
pub fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let filled = (current.min(total) * WIDTH / total) as usize;
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(filled),
        " ".repeat(WIDTH as usize - filled),
        human_size(current),
        human_size(total)
    )
}

/// Sizes with decimal units and three significant digits, as Docker's
/// go-units HumanSize prints them ("2.15MB", "527B").
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{:.4}", v);
    // Three significant digits, trailing zeros dropped (Go's %.4g).
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{:.*}", digits, s.parse::<f64>().unwrap_or(v));
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(527), "527B");
        assert_eq!(human_size(2_150_000), "2.15MB");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(33_300_000), "33.3MB");
    }

    #[test]
    fn bar_has_fifty_columns() {
        let b = bar(50, 100);
        assert!(b.starts_with(&format!("[{}>", "=".repeat(25))), "{b}");
        assert_eq!(b.find(']'), Some(52));
        assert_eq!(bar(100, 100).find(']'), Some(52));
    }

    #[tokio::test]
    async fn a_late_follower_sees_everything() {
        let p = Progress::new();
        p.status("one");
        let early = p.clone().follow();
        p.status("two");
        p.finish();
        let late: Vec<_> = p.clone().follow().collect().await;
        let early: Vec<_> = early.collect().await;
        let text = |v: Vec<Result<Bytes, std::io::Error>>| {
            v.into_iter()
                .map(|b| String::from_utf8(b.unwrap().to_vec()).unwrap())
                .collect::<String>()
        };
        assert_eq!(
            text(late),
            "{\"status\":\"one\"}\r\n{\"status\":\"two\"}\r\n"
        );
        assert_eq!(
            text(early),
            "{\"status\":\"one\"}\r\n{\"status\":\"two\"}\r\n"
        );
    }
}
