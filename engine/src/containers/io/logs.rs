//! Reading a container's log (json-file, or the local driver's records)
//! for `docker logs`.
//!
//! Lines are decoded and filtered in a blocking thread and handed over a
//! bounded channel in batches of frames, so a large log is streamed rather
//! than loaded whole. Berth's own entries (`{"log":…,"stream":…,"time":…}`
//! in that order) are decoded without a JSON parser; anything else goes
//! through serde. `--tail N` reads the file backwards from its end to find
//! where the last N entries start, so it costs what it shows, not the
//! file's size.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_proto::json_log::{rotated, Entry};
use berth_proto::{local_log, timefmt};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::containers::Containers;
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
    /// `--details`: the log's extra attributes before each line.
    pub details: bool,
}

/// Frames are sent in batches of about this size.
const BATCH: usize = 64 * 1024;

/// How a container's log is stored (json-file, or `local_log` records).
use berth_proto::shim::LogFormat as Format;

impl Containers {
    /// Returns whether the container has a TTY (raw stream) and the receiver
    /// of the encoded output.
    pub async fn logs(
        &self,
        name: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Bytes>)> {
        let c = self.lookup(name).await?;
        let paths = self.paths(&c.id);
        let Some(path) = c.log_file(&paths) else {
            return Err(Error::InvalidArgument(
                "configured logging driver does not support reading".into(),
            ));
        };
        let format = c.log_format();
        let tty = c.tty();
        let (tx, rx) = mpsc::channel(16);
        let mut changes = self.subscribe();
        let id = c.id.clone();
        let running = c.is_running();
        let store = self.store.clone();
        let details = if opts.details {
            Some(details_of(&c))
        } else {
            None
        };
        tokio::task::spawn_blocking(move || {
            let mut out = Sender {
                tx,
                buf: Vec::with_capacity(BATCH),
                tty,
                opts: &opts,
                details: details.as_deref(),
            };
            // Rotated files first, oldest to newest; then the live one.
            let mut offset = 0;
            for (file, start, skip) in plan(format, &path, &opts) {
                offset = read_from(format, &file, start, skip, &mut out);
            }
            let mut inode = inode_of(&path);
            if !out.flush() || !opts.follow || !running {
                return;
            }
            // Follow: read what was appended until the container stops.
            let rt = tokio::runtime::Handle::current();
            loop {
                let stopped = rt.block_on(async {
                    tokio::select! {
                        ch = changes.recv() => matches!(ch, Ok(ref c @ (crate::containers::Change::Exited(_) | crate::containers::Change::Removed { .. })) if c.id() == id),
                        _ = tokio::time::sleep(Duration::from_millis(100)) => false,
                    }
                });
                if out.tx.is_closed() {
                    return;
                }
                // Rotated meanwhile: finish the file we were reading (now
                // `.N`), then the newer rotated ones, then the live one.
                let now = inode_of(&path);
                if now != inode {
                    let moved_to = (1..64)
                        .map(|n| rotated(&path, n))
                        .take_while(|f| f.exists())
                        .position(|f| inode.is_some() && inode_of(&f) == inode);
                    if let Some(i) = moved_to {
                        read_from(format, &rotated(&path, i as u32 + 1), offset, 0, &mut out);
                        for n in (1..=i as u32).rev() {
                            read_from(format, &rotated(&path, n), 0, 0, &mut out);
                        }
                    }
                    inode = now;
                    offset = 0;
                }
                offset = read_from(format, &path, offset, 0, &mut out);
                if !out.flush() || stopped {
                    return;
                }
                let still = rt
                    .block_on(store.container(&id))
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.state.running);
                if !still {
                    read_from(format, &path, offset, 0, &mut out);
                    out.flush();
                    return;
                }
            }
        });
        Ok((tty, rx))
    }
}

/// Docker's `--details`: the attributes named by the log options `labels`
/// and `env`, as `key=value` pairs joined by commas.
fn details_of(c: &crate::containers::record::Container) -> String {
    c.log_attributes()
        .iter()
        .map(|(k, v)| format!("{}={}", url_escape(k), url_escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Encodes entries into frames and sends them in batches: one frame per
/// entry, as dockerd sends them (SDKs that stream logs hand out one item
/// per frame, so entries sharing a frame would reach users as one line).
struct Sender<'a> {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    tty: bool,
    opts: &'a LogOptions,
    details: Option<&'a str>,
}

impl Sender<'_> {
    /// Adds an entry if it passes the filters; false when the client left.
    fn push(&mut self, e: &Entry) -> bool {
        if !wanted(e, self.opts) {
            return true;
        }
        self.emit(e)
    }

    /// Adds a local record's output if it passes the filters: an entry
    /// per line (a record holds what one read of the output got), each
    /// with the record's time.
    fn push_record(&mut self, h: &local_log::Header, body: &[u8]) -> bool {
        let o = self.opts;
        if !o.wants(h.stream, || i128::from(h.time_nanos)) {
            return true;
        }
        let time = if o.timestamps {
            let secs = h.time_nanos.div_euclid(1_000_000_000);
            timefmt::format(secs, h.time_nanos.rem_euclid(1_000_000_000) as u32)
        } else {
            String::new()
        };
        lines_of(body).all(|line| {
            self.emit(&Entry {
                stream: h.stream,
                log: Cow::Borrowed(line),
                time: Cow::Borrowed(&time),
            })
        })
    }

    /// Adds an entry that passed the filters.
    fn emit(&mut self, e: &Entry) -> bool {
        let mut len = e.log.len();
        if self.opts.timestamps {
            len += e.time.len() + 1;
        }
        if let Some(d) = self.details {
            len += d.len() + 1;
        }
        if !self.tty {
            self.buf
                .extend_from_slice(&berth_proto::attach::frame_header(e.stream, len));
        }
        if self.opts.timestamps {
            self.buf.extend_from_slice(e.time.as_bytes());
            self.buf.push(b' ');
        }
        if let Some(d) = self.details {
            self.buf.extend_from_slice(d.as_bytes());
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(&e.log);
        self.buf.len() < BATCH || self.flush()
    }

    /// Sends what is batched; false when the client left.
    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return !self.tx.is_closed();
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH)));
        self.tx.blocking_send(chunk).is_ok()
    }
}

fn wanted(e: &Entry, opts: &LogOptions) -> bool {
    opts.wants(e.stream, || {
        crate::util::parse_time_filter(&e.time).unwrap_or(0)
    })
}

impl LogOptions {
    /// Whether output of `stream` (1 stdout, 2 stderr) at a time (in
    /// nanoseconds, asked for only when --since or --until is set) is shown.
    fn wants(&self, stream: u8, time: impl FnOnce() -> i128) -> bool {
        if (stream == 1 && !self.stdout) || (stream == 2 && !self.stderr) {
            return false;
        }
        if self.since == 0 && self.until == 0 {
            return true;
        }
        let t = time();
        !((self.since > 0 && t < self.since) || (self.until > 0 && t > self.until))
    }
}

/// Sends entries from `offset` on, leaving out the first `skip` lines (of
/// a local record that `--tail` starts inside); returns the offset reached
/// (only whole lines or records).
fn read_from(format: Format, path: &Path, offset: u64, skip: usize, out: &mut Sender) -> u64 {
    match format {
        Format::JsonFile => read_json_from(path, offset, out),
        Format::Local => read_local_from(path, offset, skip, out),
        // No Docker container logs in the CRI's form (kubelets read those
        // files themselves).
        Format::Cri => offset,
    }
}

/// A record's lines, each with its newline (the last may have none).
fn lines_of(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split_inclusive(|b| *b == b'\n')
}

/// The log file opened for reading from `offset` (None: gone, or shorter).
fn reader_at(path: &Path, offset: u64) -> Option<BufReader<File>> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    Some(BufReader::with_capacity(256 * 1024, file))
}

fn read_local_from(path: &Path, offset: u64, mut skip: usize, out: &mut Sender) -> u64 {
    let Some(mut reader) = reader_at(path, offset) else {
        return offset;
    };
    let mut pos = offset;
    let mut head = [0u8; local_log::HEADER];
    let mut payload = Vec::new();
    loop {
        // A short read is a record still being written: stop before it.
        if reader.read_exact(&mut head).is_err() {
            break;
        }
        let Some(h) = local_log::Header::decode(&head) else {
            tracing::warn!(path = %path.display(), offset = pos, "not a local log record");
            break;
        };
        payload.resize(h.len as usize + local_log::TRAILER, 0);
        if reader.read_exact(&mut payload).is_err() {
            break;
        }
        pos += h.record_len();
        let mut body = &payload[..h.len as usize];
        if skip > 0 {
            let dropped: usize = lines_of(body).take(skip).map(<[u8]>::len).sum();
            body = &body[dropped..];
            skip = 0;
        }
        if !body.is_empty() && !out.push_record(&h, body) {
            break;
        }
    }
    pos
}

fn read_json_from(path: &Path, offset: u64, out: &mut Sender) -> u64 {
    let Some(mut reader) = reader_at(path, offset) else {
        return offset;
    };
    let mut pos = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.last() != Some(&b'\n') => break, // a line still being written
            Ok(n) => pos += n as u64,
        }
        if let Some(e) = Entry::parse(&line) {
            if !out.push(&e) {
                break;
            }
        }
    }
    pos
}

fn inode_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The files to read and where to start in each (an offset, and lines to
/// skip there): the rotated ones (`.N` oldest … `.1`), then the live log;
/// with `--tail`, only as far back as the last N wanted entries reach.
fn plan(format: Format, path: &Path, opts: &LogOptions) -> Vec<(PathBuf, u64, usize)> {
    let mut files = vec![path.to_path_buf()];
    for n in 1.. {
        let f = rotated(path, n);
        if !f.exists() {
            break;
        }
        files.push(f);
    }
    // Newest first here.
    let Some(mut left) = opts.tail else {
        return files.into_iter().rev().map(|f| (f, 0, 0)).collect();
    };
    let mut out = Vec::new();
    for f in files {
        let (start, skip, found) = match format {
            Format::JsonFile => tail_start(&f, left, opts).map(|(s, n)| (s, 0, n)),
            Format::Local => tail_start_local(&f, left, opts),
            Format::Cri => None,
        }
        .unwrap_or((0, 0, 0));
        out.push((f, start, skip));
        left -= found.min(left);
        if left == 0 {
            break;
        }
    }
    out.reverse();
    out
}

/// Where reading must start for the last `n` wanted entries of one file,
/// and how many it has of them (fewer than `n`: it starts at 0). The file
/// is read backwards in blocks from its end (an unfinished last line is
/// not an entry yet).
fn tail_start(path: &Path, n: usize, opts: &LogOptions) -> Option<(u64, usize)> {
    let file = File::open(path).ok()?;
    let mut end = file.metadata().ok()?.len();
    if n == 0 {
        return Some((end, 0));
    }
    let mut block = 64 * 1024u64;
    let mut found = 0;
    let mut first_pass = true;
    loop {
        let start = end.saturating_sub(block);
        // Lines are at most a few tens of KiB: a block of 64 MiB without
        // two newlines is not a json-file log.
        if block > 64 << 20 {
            return None;
        }
        let mut buf = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut buf, start).ok()?;
        // Newline positions in the block; a line is whole when the byte
        // before it is a newline too, or the file starts there.
        let newlines: Vec<usize> = memchr::memchr_iter(b'\n', &buf).collect();
        if newlines.is_empty() || (newlines.len() == 1 && start > 0) {
            if start == 0 {
                return Some((0, found));
            }
            block *= 2; // one line longer than the block
            continue;
        }
        let last = *newlines.last()?;
        if first_pass && last + 1 < buf.len() {
            // Drop the unfinished last line.
            buf.truncate(last + 1);
        }
        first_pass = false;
        let mut line_end = last + 1;
        for idx in (0..newlines.len()).rev() {
            let line_start = if idx == 0 {
                if start > 0 {
                    break;
                }
                0
            } else {
                newlines[idx - 1] + 1
            };
            if line_start >= line_end {
                continue;
            }
            if let Some(e) = Entry::parse(&buf[line_start..line_end]) {
                if wanted(&e, opts) {
                    found += 1;
                    if found == n {
                        return Some((start + line_start as u64, found));
                    }
                }
            }
            line_end = line_start;
        }
        if start == 0 {
            return Some((0, found));
        }
        // Continue before the first whole line of this block.
        end = start + newlines[0] as u64 + 1;
        block = 64 * 1024;
    }
}

/// `tail_start` for local records: walks back from the end through the
/// records' trailing lengths; returns where to start, how many lines of
/// that record to skip, and how many wanted lines were found.
fn tail_start_local(path: &Path, n: usize, opts: &LogOptions) -> Option<(u64, usize, usize)> {
    let file = File::open(path).ok()?;
    let mut end = local_end(&file)?;
    if n == 0 {
        return Some((end, 0, 0));
    }
    let mut found = 0;
    while end > 0 {
        let mut t = [0u8; local_log::TRAILER];
        file.read_exact_at(&mut t, end.checked_sub(local_log::TRAILER as u64)?)
            .ok()?;
        let len = u64::from(u32::from_be_bytes(t));
        let start = end.checked_sub((local_log::HEADER + local_log::TRAILER) as u64 + len)?;
        let mut head = [0u8; local_log::HEADER];
        file.read_exact_at(&mut head, start).ok()?;
        let h = local_log::Header::decode(&head).filter(|h| u64::from(h.len) == len)?;
        if opts.wants(h.stream, || i128::from(h.time_nanos)) {
            let mut body = vec![0u8; len as usize];
            file.read_exact_at(&mut body, start + local_log::HEADER as u64)
                .ok()?;
            let lines = lines_of(&body).count();
            if found + lines >= n {
                return Some((start, lines - (n - found), n));
            }
            found += lines;
        }
        end = start;
    }
    Some((0, 0, found))
}

/// The end of the last whole record: the file's length, unless a record
/// is being written there (then found by walking the headers forward).
fn local_end(file: &File) -> Option<u64> {
    let len = file.metadata().ok()?.len();
    let whole_at_end = || -> Option<()> {
        let mut t = [0u8; local_log::TRAILER];
        file.read_exact_at(&mut t, len.checked_sub(local_log::TRAILER as u64)?)
            .ok()?;
        let n = u32::from_be_bytes(t);
        let start =
            len.checked_sub((local_log::HEADER + local_log::TRAILER) as u64 + u64::from(n))?;
        let mut head = [0u8; local_log::HEADER];
        file.read_exact_at(&mut head, start).ok()?;
        local_log::Header::decode(&head)
            .filter(|h| h.len == n)
            .map(|_| ())
    };
    if len == 0 || whole_at_end().is_some() {
        return Some(len);
    }
    let mut at = 0u64;
    let mut head = [0u8; local_log::HEADER];
    while file.read_exact_at(&mut head, at).is_ok() {
        let Some(h) = local_log::Header::decode(&head) else {
            break;
        };
        if at + h.record_len() > len {
            break;
        }
        at += h.record_len();
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LogOptions {
        LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }
    }

    #[test]
    fn tail_starts_at_the_last_entries() {
        let dir = std::env::temp_dir().join(format!("berth-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut text = String::new();
        for i in 0..5000 {
            let stream = if i % 2 == 0 { "stdout" } else { "stderr" };
            text.push_str(&format!(
                "{{\"log\":\"line {i}\\n\",\"stream\":\"{stream}\",\"time\":\"T\"}}\n"
            ));
        }
        text.push_str("{\"log\":\"unfinished");
        std::fs::write(&path, &text).unwrap();
        let start = tail_start(&path, 3, &opts()).unwrap().0;
        assert!(text[start as usize..].starts_with("{\"log\":\"line 4997\\n\""));
        let stdout_only = LogOptions {
            stderr: false,
            ..opts()
        };
        let start = tail_start(&path, 2, &stdout_only).unwrap().0;
        assert!(text[start as usize..].starts_with("{\"log\":\"line 4996\\n\""));
        assert_eq!(tail_start(&path, 100_000, &opts()), Some((0, 5000)));
        // One entry longer than a read block, ending the file.
        let long = format!(
            "{{\"log\":\"{}\\n\",\"stream\":\"stdout\",\"time\":\"T\"}}\n",
            "x".repeat(200_000)
        );
        std::fs::write(
            &path,
            format!("{}{long}", &text[..text.rfind('\n').unwrap() + 1]),
        )
        .unwrap();
        let start = tail_start(&path, 1, &opts()).unwrap().0 as usize;
        assert_eq!(std::fs::read_to_string(&path).unwrap()[start..], long);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Appends a local record.
    fn record(out: &mut Vec<u8>, stream: u8, time_nanos: i64, body: &[u8]) {
        let h = local_log::Header {
            len: body.len() as u32,
            stream,
            partial: !body.ends_with(b"\n"),
            time_nanos,
        };
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(body);
        out.extend_from_slice(&local_log::trailer(body.len() as u32));
    }

    /// What `read_from` sends for `plan`'s files, as (stream, text) frames.
    fn read_local(path: &Path, opts: &LogOptions) -> String {
        let (tx, mut rx) = mpsc::channel(1024);
        let mut out = Sender {
            tx,
            buf: Vec::new(),
            tty: true,
            opts,
            details: None,
        };
        for (f, start, skip) in plan(Format::Local, path, opts) {
            read_from(Format::Local, &f, start, skip, &mut out);
        }
        out.flush();
        drop(out);
        let mut text = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            text.extend_from_slice(&chunk);
        }
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn local_records_read_whole_tailed_and_filtered() {
        let dir = std::env::temp_dir().join(format!("berth-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        let mut data = Vec::new();
        record(&mut data, 1, 1_000, b"a1\na2\na3\n");
        record(&mut data, 2, 2_000, b"e1\n");
        record(&mut data, 1, 3_000, b"b1\nb2\npart");
        record(&mut data, 1, 4_000, b"ial\n");
        // A record still being written ends the file.
        let mut torn = Vec::new();
        record(&mut torn, 1, 5_000, b"not yet\n");
        data.extend_from_slice(&torn[..torn.len() - 6]);
        std::fs::write(&path, &data).unwrap();

        assert_eq!(
            read_local(&path, &opts()),
            "a1\na2\na3\ne1\nb1\nb2\npartial\n"
        );
        let tail = |n| LogOptions {
            tail: Some(n),
            ..opts()
        };
        // Lines of a record are counted one by one; "ial\n" is one.
        assert_eq!(read_local(&path, &tail(2)), "partial\n");
        assert_eq!(read_local(&path, &tail(3)), "b2\npartial\n");
        assert_eq!(read_local(&path, &tail(5)), "e1\nb1\nb2\npartial\n");
        assert_eq!(read_local(&path, &tail(0)), "");
        assert_eq!(read_local(&path, &tail(100)).lines().count(), 7);
        let stderr_only = LogOptions {
            stdout: false,
            tail: Some(1),
            ..opts()
        };
        assert_eq!(read_local(&path, &stderr_only), "e1\n");
        let since = LogOptions {
            since: 2_500,
            ..opts()
        };
        assert_eq!(read_local(&path, &since), "b1\nb2\npartial\n");
        let stamped = LogOptions {
            timestamps: true,
            until: 1_500,
            ..opts()
        };
        assert_eq!(
            read_local(&path, &stamped),
            "1970-01-01T00:00:00.000001000Z a1\n1970-01-01T00:00:00.000001000Z a2\n1970-01-01T00:00:00.000001000Z a3\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
