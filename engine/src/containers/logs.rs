//! Reading a container's json-file log for `docker logs`.
//!
//! Lines are decoded and filtered in a blocking thread and handed over a
//! bounded channel, so a large log is streamed rather than loaded whole;
//! `--tail N` keeps only the last N entries in memory.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::Containers;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    pub follow: bool,
    /// None: all.
    pub tail: Option<usize>,
    /// Nanoseconds since the epoch; 0 = unbounded.
    pub since: i128,
    pub until: i128,
}

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

impl Containers {
    /// Returns whether the container has a TTY (raw stream) and the receiver
    /// of the encoded output.
    pub async fn logs(
        &self,
        name: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Bytes>)> {
        let c = self.lookup(name).await?;
        if c.log_driver() == "none" {
            return Err(Error::InvalidArgument(
                "configured logging driver does not support reading".into(),
            ));
        }
        let path = self.paths(&c.id).log(&c.id);
        let tty = c.tty();
        let (tx, rx) = mpsc::channel(64);
        let mut changes = self.subscribe();
        let id = c.id.clone();
        let running = c.is_running();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut offset = read_from(&path, 0, &opts, tty, &tx, true);
            if !opts.follow || !running {
                return;
            }
            // Follow: read what was appended until the container stops.
            let rt = tokio::runtime::Handle::current();
            loop {
                let stopped = rt.block_on(async {
                    tokio::select! {
                        ch = changes.recv() => matches!(ch, Ok(super::Change::Exited(ref x)) | Ok(super::Change::Removed(ref x)) if *x == id),
                        _ = tokio::time::sleep(Duration::from_millis(100)) => false,
                    }
                });
                if tx.is_closed() {
                    return;
                }
                offset = read_from(&path, offset, &opts, tty, &tx, false);
                if stopped {
                    return;
                }
                let still = rt
                    .block_on(store.container(&id))
                    .ok()
                    .flatten()
                    .and_then(|r| serde_json::from_str::<super::record::State>(&r.state).ok())
                    .is_some_and(|s| s.running);
                if !still {
                    read_from(&path, offset, &opts, tty, &tx, false);
                    return;
                }
            }
        });
        Ok((tty, rx))
    }
}

/// Sends entries from `offset` on; returns the offset reached (only whole lines).
fn read_from(
    path: &PathBuf,
    offset: u64,
    opts: &LogOptions,
    tty: bool,
    tx: &mpsc::Sender<Bytes>,
    apply_tail: bool,
) -> u64 {
    let Ok(mut file) = std::fs::File::open(path) else {
        return offset;
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut reader = BufReader::new(file);
    let mut pos = offset;
    let mut tail: VecDeque<Bytes> = VecDeque::new();
    let limit = if apply_tail { opts.tail } else { None };
    if limit == Some(0) {
        return pos;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.last() != Some(&b'\n') => break, // a line still being written
            Ok(n) => pos += n as u64,
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(&line) else {
            continue;
        };
        let stream = if entry.stream == "stderr" { 2u8 } else { 1u8 };
        if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
            continue;
        }
        if opts.since > 0 || opts.until > 0 {
            let t = crate::util::parse_time_filter(&entry.time).unwrap_or(0);
            if (opts.since > 0 && t < opts.since) || (opts.until > 0 && t > opts.until) {
                continue;
            }
        }
        let mut text = Vec::with_capacity(entry.log.len() + 40);
        if opts.timestamps {
            text.extend_from_slice(entry.time.as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(entry.log.as_bytes());
        let chunk = encode(stream, &text, tty);
        match limit {
            Some(n) => {
                tail.push_back(chunk);
                if tail.len() > n {
                    tail.pop_front();
                }
            }
            None => {
                if tx.blocking_send(chunk).is_err() {
                    return pos;
                }
            }
        }
    }
    for chunk in tail {
        if tx.blocking_send(chunk).is_err() {
            break;
        }
    }
    pos
}

/// stdcopy framing without a TTY, raw bytes with one.
pub fn encode(stream: u8, data: &[u8], tty: bool) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(data);
    }
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(&berth_proto::attach::frame_header(stream, data.len()));
    out.extend_from_slice(data);
    Bytes::from(out)
}
