//! A container's output cut into lines as dockerd's copier cuts it: at
//! newlines, and a line longer than [`MAX_PARTIAL`] in pieces of that
//! size, whether it came in one read or in many. The json-file writer and
//! the log shipper both take their lines from here.

/// dockerd's copier holds at most 16 KiB of a line.
pub const MAX_PARTIAL: usize = 16 * 1024;

/// One cut: `text` is a line with its newline (`ended`), or a piece of a
/// line that goes on, or at a stream's close what was left (neither ends
/// with a newline). `fresh`: `text` lies wholly in the data just read (so
/// it is valid UTF-8 when that data is).
pub struct Cut<'a> {
    pub text: &'a [u8],
    pub ended: bool,
    pub fresh: bool,
}

#[derive(Default)]
pub struct Lines {
    /// Bytes of an unfinished line, per stream (0 = stdout, 1 = stderr);
    /// always shorter than [`MAX_PARTIAL`].
    partial: [Vec<u8>; 2],
}

impl Lines {
    /// Cuts output of `stream` (1 stdout, 2 stderr) as it was read.
    pub fn cut(&mut self, stream: u8, mut data: &[u8], mut each: impl FnMut(Cut)) {
        let buf = &mut self.partial[usize::from(stream == 2)];
        while !data.is_empty() {
            let room = MAX_PARTIAL - buf.len();
            let window = &data[..data.len().min(room)];
            if let Some(pos) = memchr::memchr(b'\n', window) {
                let (line, rest) = data.split_at(pos + 1);
                if buf.is_empty() {
                    each(Cut {
                        text: line,
                        ended: true,
                        fresh: true,
                    });
                } else {
                    buf.extend_from_slice(line);
                    each(Cut {
                        text: buf,
                        ended: true,
                        fresh: false,
                    });
                    buf.clear();
                }
                data = rest;
                continue;
            }
            if window.len() == room && buf.is_empty() {
                // A whole piece in this read.
                each(Cut {
                    text: window,
                    ended: false,
                    fresh: true,
                });
            } else {
                buf.extend_from_slice(window);
                if buf.len() == MAX_PARTIAL {
                    each(Cut {
                        text: buf,
                        ended: false,
                        fresh: false,
                    });
                    buf.clear();
                }
            }
            data = &data[window.len()..];
        }
    }

    /// What is left of `stream`'s unfinished line (it closed), if any.
    pub fn take_rest(&mut self, stream: u8) -> Vec<u8> {
        std::mem::take(&mut self.partial[usize::from(stream == 2)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(lines: &mut Lines, stream: u8, data: &[u8]) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        lines.cut(stream, data, |c| out.push((c.text.len(), c.ended)));
        out
    }

    /// A 20,000-byte line is two cuts however it is read, as dockerd cuts
    /// it; streams keep their own unfinished lines.
    #[test]
    fn long_lines_are_cut_alike_in_one_read_or_many() {
        let mut line = vec![b'x'; 20_000];
        line.push(b'\n');
        let mut l = Lines::default();
        assert_eq!(cuts(&mut l, 1, &line), [(MAX_PARTIAL, false), (3617, true)]);
        let mut got = Vec::new();
        for chunk in line.chunks(3000) {
            got.extend(cuts(&mut l, 1, chunk));
        }
        assert_eq!(got, [(MAX_PARTIAL, false), (3617, true)]);
        assert_eq!(cuts(&mut l, 1, b"ab"), []);
        assert_eq!(cuts(&mut l, 2, b"c\nd"), [(2, true)]);
        assert_eq!(cuts(&mut l, 1, b"\n\n"), [(3, true), (1, true)]);
        assert_eq!(l.take_rest(2), b"d");
        // Exactly one piece long: the newline ends an empty last piece.
        let mut exact = vec![b'y'; MAX_PARTIAL];
        exact.push(b'\n');
        assert_eq!(cuts(&mut l, 1, &exact), [(MAX_PARTIAL, false), (1, true)]);
    }
}
