//! A solve's progress as BuildKit reports it: `Control.Status` streams
//! vertexes (one per step, with a digest, a name like `[2/3] COPY . /app`,
//! start and completion times, `cached`, an error), statuses inside a
//! vertex (`transferring context: 38B done`) and log lines of RUN steps.
//! buildx prints its tty and plain output from exactly these.
//!
//! Every update is kept, so a Status call that arrives late (or twice)
//! still sees the build from its start; the stream ends when the solve
//! does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bollard_buildkit_proto::google::protobuf::Timestamp;
use bollard_buildkit_proto::moby::buildkit::v1::{StatusResponse, Vertex, VertexLog, VertexStatus};
use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// BuildKit's log stream numbers.
pub const STDOUT: i64 = 1;
pub const STDERR: i64 = 2;

pub struct Status {
    /// Seeds vertex digests, so two builds never share one.
    seed: String,
    next: AtomicU64,
    updates: Mutex<Vec<StatusResponse>>,
    /// Number of updates so far, and whether the solve has ended.
    count: watch::Sender<(usize, bool)>,
}

pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

impl Status {
    pub fn new(seed: &str) -> Arc<Status> {
        Arc::new(Status {
            seed: seed.to_string(),
            next: AtomicU64::new(0),
            updates: Mutex::new(Vec::new()),
            count: watch::channel((0, false)).0,
        })
    }

    fn push(&self, update: StatusResponse) {
        let mut all = self.updates.lock().unwrap_or_else(|p| p.into_inner());
        all.push(update);
        let n = all.len();
        drop(all);
        self.count.send_modify(|c| c.0 = n);
    }

    /// Opens a vertex: shown at once as started.
    pub fn vertex(self: &Arc<Self>, name: &str) -> VertexHandle {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let digest = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{}/{n}/{name}", self.seed)))
        );
        let v = VertexHandle {
            status: self.clone(),
            vertex: Vertex {
                digest,
                name: name.to_string(),
                started: Some(now()),
                ..Default::default()
            },
            done: false,
        };
        v.send();
        v
    }

    /// The solve has ended: followers get what is left and stop.
    pub fn finish(&self) {
        self.count.send_modify(|c| c.1 = true);
    }

    /// Every update from the first, then new ones as they come, until the
    /// solve ends.
    pub fn follow(self: Arc<Self>) -> impl Stream<Item = StatusResponse> + Send + 'static {
        let rx = self.count.subscribe();
        futures_util::stream::unfold((self, rx, 0usize), |(me, mut rx, sent)| async move {
            loop {
                let (n, ended) = *rx.borrow_and_update();
                if sent < n {
                    let batch: Vec<StatusResponse> = {
                        let all = me.updates.lock().unwrap_or_else(|p| p.into_inner());
                        all[sent..n].to_vec()
                    };
                    let merged = merge(batch);
                    return Some((merged, (me, rx, n)));
                }
                if ended || rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

/// Several updates as one message (a RUN step's lines arrive in bursts).
fn merge(batch: Vec<StatusResponse>) -> StatusResponse {
    let mut out = StatusResponse::default();
    for u in batch {
        out.vertexes.extend(u.vertexes);
        out.statuses.extend(u.statuses);
        out.logs.extend(u.logs);
        out.warnings.extend(u.warnings);
    }
    out
}

/// One vertex being reported. Dropped without `done`, `cached` or
/// `error`, it completes (a step that ended by other means).
pub struct VertexHandle {
    status: Arc<Status>,
    vertex: Vertex,
    done: bool,
}

impl VertexHandle {
    fn send(&self) {
        self.status.push(StatusResponse {
            vertexes: vec![self.vertex.clone()],
            ..Default::default()
        });
    }

    pub fn digest(&self) -> &str {
        &self.vertex.digest
    }

    /// A RUN step's output, on stdout or stderr.
    pub fn log(&self, stream: i64, msg: &[u8]) {
        self.status.push(StatusResponse {
            logs: vec![VertexLog {
                vertex: self.vertex.digest.clone(),
                timestamp: Some(now()),
                stream,
                msg: msg.to_vec(),
            }],
            ..Default::default()
        });
    }

    /// A finished item inside the vertex (`transferring context: 38B`,
    /// `naming to docker.io/library/x`): shown with `done`.
    pub fn item(&self, id: &str, current: i64, total: i64) {
        let t = now();
        self.status.push(StatusResponse {
            statuses: vec![VertexStatus {
                id: id.to_string(),
                vertex: self.vertex.digest.clone(),
                name: String::new(),
                current,
                total,
                timestamp: Some(t),
                started: Some(t),
                completed: Some(t),
            }],
            ..Default::default()
        });
    }

    pub fn done(mut self) {
        self.complete(false, String::new());
    }

    /// The step's result came from the cache.
    pub fn cached(mut self) {
        self.complete(true, String::new());
    }

    pub fn error(mut self, message: &str) {
        self.complete(false, message.to_string());
    }

    fn complete(&mut self, cached: bool, error: String) {
        if self.done {
            return;
        }
        self.done = true;
        self.vertex.cached = cached;
        self.vertex.error = error;
        self.vertex.completed = Some(now());
        self.send();
    }
}

impl Drop for VertexHandle {
    fn drop(&mut self) {
        self.complete(false, String::new());
    }
}
