//! The container's log in Docker's json-file format: one JSON object a line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-22T05:30:56.123456789Z"}`,
//! in Berth's `local` format (`berth_proto::local_log`: a binary record
//! per read, holding whole lines, written as it came with one writev), or
//! in the CRI's (`berth_proto::cri_log`: `<time> stdout F hello`), cut
//! into entries as json-file is.
//!
//! Like Docker, output is cut into entries at newlines; a line longer than
//! [`MAX_PARTIAL`] is written in pieces without a trailing newline, and what
//! is left when a stream closes is written as it is. The entries of one
//! read of the container's output go out together in one `write(2)` on an
//! O_APPEND file: whole entries only, so readers never see half of one, and
//! one system call per read rather than per line.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_proto::json_log::{self, append_entry};
use berth_proto::{cri_log, local_log, timefmt};

/// The file format: the shim's `--log-format` (json-file, local or cri).
pub use berth_proto::shim::LogFormat as Format;

use crate::lines::{Cut, Lines, MAX_PARTIAL};

pub struct LogWriter {
    format: Format,
    file: Option<File>,
    path: PathBuf,
    /// Bytes in the current file, and where it is rotated (0: never).
    size: u64,
    max_size: u64,
    /// Files kept in all, the current one included.
    max_files: u32,
    /// json-file: the lines of the output.
    lines: Lines,
    /// local: bytes of an unfinished line, per stream (0 = stdout, 1 =
    /// stderr).
    partial: [Vec<u8>; 2],
    /// Whole entries not written yet: everything one read produced goes out
    /// in one write(2), not one per line (a chatty container writes
    /// millions of lines).
    out: Vec<u8>,
    /// The time of the output being handled: lines that arrived in one
    /// read share it.
    time: String,
}

impl LogWriter {
    /// Opens (creating) the log; an empty path means "do not log". With
    /// `max_size`, the log is rotated as Docker's json-file rotates it:
    /// `<log>.1` is the newest old file, `<log>.<max_files - 1>` the oldest.
    pub fn open(
        path: &Path,
        max_size: u64,
        max_files: u32,
        format: Format,
    ) -> std::io::Result<LogWriter> {
        let (file, size) = if path.as_os_str().is_empty() {
            (None, 0)
        } else {
            let f = open_append(path)?;
            let size = f.metadata()?.len();
            (Some(f), size)
        };
        Ok(LogWriter {
            format,
            file,
            path: path.to_path_buf(),
            size,
            max_size,
            max_files: max_files.max(1),
            lines: Lines::default(),
            partial: [Vec::new(), Vec::new()],
            out: Vec::new(),
            time: String::new(),
        })
    }

    /// Moves the full log aside (dropping the oldest) and starts a new one.
    fn rotate(&mut self) -> std::io::Result<()> {
        let numbered = |n: u32| json_log::rotated(&self.path, n);
        if self.max_files < 2 {
            self.file = Some(
                File::options()
                    .write(true)
                    .truncate(true)
                    .open(&self.path)?,
            );
            self.file = Some(open_append(&self.path)?);
        } else {
            for n in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = Some(open_append(&self.path)?);
        }
        self.size = 0;
        Ok(())
    }

    /// Takes output of `stream` (1 stdout, 2 stderr) as it was read.
    pub fn write(&mut self, stream: u8, data: &[u8]) {
        if self.file.is_none() {
            return;
        }
        if self.format == Format::Local {
            return self.write_local(stream, data);
        }
        self.time = self.now();
        // Lines end at '\n', which is never inside a UTF-8 sequence: when
        // the whole read is valid, so is every line of it. (The CRI's form
        // writes the bytes as they are: no need to know.)
        let valid = self.format == Format::Cri || std::str::from_utf8(data).is_ok();
        self.out.reserve(data.len() + data.len() / 2 + 128);
        let mut lines = std::mem::take(&mut self.lines);
        lines.cut(stream, data, |Cut { text, fresh, ended }| {
            self.add(stream, text, valid && fresh, ended)
        });
        self.lines = lines;
        self.write_out();
    }

    /// `local`: the whole lines of this read (after what was left of the
    /// previous one) become one record; an unfinished line waits for the
    /// next read, up to [`MAX_PARTIAL`] bytes.
    fn write_local(&mut self, stream: u8, data: &[u8]) {
        let idx = usize::from(stream == 2);
        let time = local_log::now_nanos();
        if let Some(last) = memchr::memrchr(b'\n', data) {
            let (whole, rest) = data.split_at(last + 1);
            let before = std::mem::take(&mut self.partial[idx]);
            self.add_record(stream, false, time, &before, whole);
            self.partial[idx].extend_from_slice(rest);
        } else {
            self.partial[idx].extend_from_slice(data);
        }
        while self.partial[idx].len() >= MAX_PARTIAL {
            let rest = self.partial[idx].split_off(MAX_PARTIAL);
            let piece = std::mem::replace(&mut self.partial[idx], rest);
            self.add_record(stream, true, time, &piece, &[]);
        }
    }

    /// Writes one `local` record of `a` then `b`. When it would take the
    /// file over its size limit, the file is first filled up with the whole
    /// lines that fit, then rotated: so how often a log rotates depends on
    /// what the container wrote, not on how its output was read.
    fn add_record(&mut self, stream: u8, partial: bool, time: i64, a: &[u8], b: &[u8]) {
        let overhead = (local_log::HEADER + local_log::TRAILER) as u64;
        let len = (a.len() + b.len()) as u64;
        if len == 0 {
            return;
        }
        if self.max_size == 0 || self.size + overhead + len <= self.max_size {
            return self.write_record(stream, partial, time, a, b);
        }
        let joined = [a, b].concat();
        let mut rest = &joined[..];
        while !rest.is_empty() {
            if self.size + overhead + rest.len() as u64 <= self.max_size {
                return self.write_record(stream, partial, time, rest, &[]);
            }
            let room = self.max_size.saturating_sub(self.size + overhead) as usize;
            match memchr::memrchr(b'\n', &rest[..room.min(rest.len())]) {
                Some(i) => {
                    self.write_record(stream, false, time, &rest[..=i], &[]);
                    rest = &rest[i + 1..];
                }
                // One line longer than a whole file: it gets a file of its own.
                None if self.size == 0 => {
                    return self.write_record(stream, partial, time, rest, &[]);
                }
                None => {}
            }
            if let Err(e) = self.rotate() {
                eprintln!("berth-shim: rotating log: {e}");
                return;
            }
        }
    }

    fn write_record(&mut self, stream: u8, partial: bool, time: i64, a: &[u8], b: &[u8]) {
        let len = a.len() + b.len();
        let header = local_log::Header {
            len: len as u32,
            stream,
            partial,
            time_nanos: time,
        };
        let head = header.encode();
        let tail = local_log::trailer(len as u32);
        let mut parts = [
            std::io::IoSlice::new(&head),
            std::io::IoSlice::new(a),
            std::io::IoSlice::new(b),
            std::io::IoSlice::new(&tail),
        ];
        if let Some(f) = &mut self.file {
            if let Err(e) = write_all_vectored(f, &mut parts) {
                eprintln!("berth-shim: writing log: {e}");
            }
        }
        self.size += header.record_len();
    }

    /// Writes out unfinished lines (at stream close or exit).
    pub fn flush(&mut self) {
        self.flush_stream(1);
        self.flush_stream(2);
    }

    /// Writes out the unfinished line of one stream (it closed; the other
    /// may still be mid-line).
    pub fn flush_stream(&mut self, stream: u8) {
        if self.file.is_none() {
            return;
        }
        if self.format == Format::Local {
            let piece = std::mem::take(&mut self.partial[usize::from(stream == 2)]);
            self.add_record(stream, true, local_log::now_nanos(), &piece, &[]);
            return;
        }
        let piece = self.lines.take_rest(stream);
        if !piece.is_empty() {
            self.time = self.now();
            // The last of a stream ends its line (as containerd marks it).
            self.add(stream, &piece, false, true);
            self.write_out();
        }
    }

    /// The time of entries written now, in the format's form.
    fn now(&self) -> String {
        if self.format == Format::Cri {
            let d = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            timefmt::format_trimmed(d.as_secs() as i64, d.subsec_nanos())
        } else {
            timefmt::now()
        }
    }

    /// Adds an entry; with rotation, a file is rotated before the entry
    /// that would take it over the size limit, as Docker does. `ended`:
    /// the entry ends a line (the CRI's form says so).
    fn add(&mut self, stream: u8, text: &[u8], valid: bool, ended: bool) {
        let before = self.out.len();
        if self.format == Format::Cri {
            cri_log::append_entry(&mut self.out, stream, text, &self.time, ended);
        } else {
            append_entry(&mut self.out, stream, text, &self.time, valid);
        }
        if self.max_size > 0
            && self.size + self.out.len() as u64 > self.max_size
            && self.size + before as u64 > 0
        {
            let entry = self.out.split_off(before);
            self.write_buffered();
            if let Err(e) = self.rotate() {
                eprintln!("berth-shim: rotating log: {e}");
            }
            self.out = entry;
        }
    }

    fn write_buffered(&mut self) {
        if let Some(f) = &mut self.file {
            if !self.out.is_empty() {
                if let Err(e) = f.write_all(&self.out) {
                    eprintln!("berth-shim: writing log: {e}");
                }
                self.size += self.out.len() as u64;
            }
        }
        self.out.clear();
    }

    fn write_out(&mut self) {
        self.write_buffered();
        self.out.clear();
        // A burst can grow the buffer a lot; do not keep that forever.
        if self.out.capacity() > 4 << 20 {
            self.out = Vec::new();
        }
    }
}

/// One writev when the page cache takes it all, as it nearly always does.
fn write_all_vectored(f: &mut File, mut parts: &mut [std::io::IoSlice<'_>]) -> std::io::Result<()> {
    std::io::IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match f.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_newlines_and_keeps_partials_until_flush() {
        let dir = std::env::temp_dir().join(format!("berth-shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c-json.log");
        let mut w = LogWriter::open(&path, 0, 1, Format::JsonFile).unwrap();
        w.write(1, b"one\ntw");
        w.write(1, b"o\nthree");
        let before = std::fs::read_to_string(&path).unwrap();
        assert_eq!(before.lines().count(), 2);
        assert!(before.contains("\"log\":\"two\\n\""));
        w.flush();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after
            .lines()
            .last()
            .unwrap()
            .starts_with("{\"log\":\"three\",\"stream\":\"stdout\""));
        let long = vec![b'x'; MAX_PARTIAL + 10];
        w.write(2, &long);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        // One stream closing leaves the other's unfinished line alone.
        w.write(1, b"half");
        w.flush_stream(2);
        w.write(1, b" and half\n");
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(
            last.lines()
                .last()
                .unwrap()
                .starts_with("{\"log\":\"half and half\\n\""),
            "{last}"
        );
        // A long line read whole is cut as dockerd cuts it: a piece of
        // 16 KiB without a newline, then the rest.
        let mut whole = vec![b'z'; MAX_PARTIAL + 5];
        whole.push(b'\n');
        w.write(1, &whole);
        let text = std::fs::read_to_string(&path).unwrap();
        let tail: Vec<&str> = text.lines().rev().take(2).collect();
        assert!(tail[0].starts_with("{\"log\":\"zzzzz\\n\""), "{}", tail[0]);
        assert!(tail[1].contains(&format!("{}\",", "z".repeat(MAX_PARTIAL))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reads a `local` file back into (stream, partial, payload) records.
    #[test]
    fn the_cri_form_marks_pieces_partial_and_keeps_bytes_as_they_are() {
        let dir = std::env::temp_dir().join(format!("berth-shim-cri-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0.log");
        let mut w = LogWriter::open(&path, 0, 1, Format::Cri).unwrap();
        w.write(1, b"one\ntw");
        w.write(1, b"o\n");
        w.write(2, b"\xff raw\n");
        let mut long = vec![b'x'; MAX_PARTIAL + 3];
        long.push(b'\n');
        w.write(1, &long);
        w.write(1, b"no newline");
        w.flush();
        let raw = std::fs::read(&path).unwrap();
        let entries: Vec<_> = raw
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| berth_proto::cri_log::parse(l).expect("a CRI line"))
            .collect();
        let seen: Vec<(u8, bool, &[u8])> = entries
            .iter()
            .map(|e| (e.stream, e.partial, e.text))
            .collect();
        let piece = vec![b'x'; MAX_PARTIAL];
        assert_eq!(
            seen,
            [
                (1, false, &b"one"[..]),
                (1, false, b"two"),
                (2, false, b"\xff raw"),
                (1, true, &piece[..]),
                (1, false, b"xxx"),
                (1, false, b"no newline"),
            ]
        );
        // Go's RFC3339Nano: no trailing zeros in the fraction.
        let time = entries[0].time;
        assert!(time.ends_with('Z') && !time.ends_with("0Z"), "{time}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn records(path: &Path) -> Vec<(u8, bool, Vec<u8>)> {
        let data = std::fs::read(path).unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let h = local_log::Header::decode(&data[at..]).unwrap();
            let body = at + local_log::HEADER;
            let end = body + h.len as usize;
            let trailer = u32::from_be_bytes(data[end..end + 4].try_into().unwrap());
            assert_eq!(trailer, h.len);
            out.push((h.stream, h.partial, data[body..end].to_vec()));
            at = end + local_log::TRAILER;
        }
        out
    }

    #[test]
    fn local_records_hold_whole_lines_and_rotate() {
        let dir = std::env::temp_dir().join(format!("berth-shim-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        let mut w = LogWriter::open(&path, 0, 1, Format::Local).unwrap();
        w.write(1, b"one\ntwo\nthr");
        w.write(2, b"err\n");
        w.write(1, b"ee\nfo");
        w.flush();
        assert_eq!(
            records(&path),
            [
                (1, false, b"one\ntwo\n".to_vec()),
                (2, false, b"err\n".to_vec()),
                (1, false, b"three\n".to_vec()),
                (1, true, b"fo".to_vec()),
            ]
        );
        // A line longer than MAX_PARTIAL goes out in partial pieces.
        let long = vec![b'x'; MAX_PARTIAL + 10];
        w.write(1, &long);
        assert_eq!(records(&path).len(), 5);

        // Rotation: a file never grows past max-size (unless one record is
        // bigger), and the oldest files go.
        let rpath = dir.join("rotated.log");
        let mut r = LogWriter::open(&rpath, 100, 3, Format::Local).unwrap();
        for i in 0..20 {
            r.write(1, format!("line number {i:02} of twenty\n").as_bytes());
        }
        let newest = records(&rpath);
        assert!(std::fs::metadata(&rpath).unwrap().len() <= 100);
        // Output read in one piece rotates as often as line by line.
        let bpath = dir.join("burst.log");
        let mut burst = LogWriter::open(&bpath, 100, 3, Format::Local).unwrap();
        let all: String = (0..20)
            .map(|i| format!("line number {i:02} of twenty\n"))
            .collect();
        burst.write(1, all.as_bytes());
        assert!(records(&bpath)
            .last()
            .unwrap()
            .2
            .ends_with(b"line number 19 of twenty\n"));
        assert!(std::fs::metadata(&bpath).unwrap().len() <= 100);
        assert!(dir.join("burst.log.2").exists());
        assert_eq!(newest.last().unwrap().2, b"line number 19 of twenty\n");
        assert!(dir.join("rotated.log.2").exists());
        assert!(!dir.join("rotated.log.3").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
