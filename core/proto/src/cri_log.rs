//! The CRI's container log, as kubelets read it (`kubectl logs`, `crictl
//! logs`): one line per entry,
//! `2026-11-22T05:30:56.1234Z stdout F hello`, the time in Go's
//! RFC3339Nano (trailing zeros dropped), the stream, `F` for an entry that
//! ends a line or `P` for a piece of a longer one, then the text without
//! its newline. Written by the shim for containers of the CRI.

/// Appends one entry; `ended`: `text` is the end of a line (its newline,
/// if it had one, is not written: the format's own newline stands for it).
pub fn append_entry(out: &mut Vec<u8>, stream: u8, text: &[u8], time: &str, ended: bool) {
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(if stream == 2 {
        b" stderr "
    } else {
        b" stdout "
    });
    out.extend_from_slice(if ended { b"F " } else { b"P " });
    out.extend_from_slice(text.strip_suffix(b"\n").unwrap_or(text));
    out.push(b'\n');
}

/// One entry of a CRI log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: &'a str,
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    /// `P`: the text continues in the next entry of its stream.
    pub partial: bool,
    pub text: &'a [u8],
}

/// Reads one line of a CRI log (without its newline); `None` if it is not
/// one.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let stream = match fields.next()? {
        b"stdout" => 1,
        b"stderr" => 2,
        _ => return None,
    };
    let partial = match fields.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    Some(Entry {
        time,
        stream,
        partial,
        text: fields.next().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_the_kubelets_lines_and_read_back() {
        let mut out = Vec::new();
        append_entry(&mut out, 1, b"hello\n", "2026-11-22T05:30:56.1234Z", true);
        append_entry(&mut out, 2, b"half a li", "2026-11-22T05:30:56Z", false);
        append_entry(&mut out, 2, b"", "2026-11-22T05:30:57Z", true);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "2026-11-22T05:30:56.1234Z stdout F hello\n\
             2026-11-22T05:30:56Z stderr P half a li\n\
             2026-11-22T05:30:57Z stderr F \n"
        );
        let lines: Vec<_> = out.split(|b| *b == b'\n').collect();
        assert_eq!(
            parse(lines[1]),
            Some(Entry {
                time: "2026-11-22T05:30:56Z",
                stream: 2,
                partial: true,
                text: b"half a li"
            })
        );
        assert_eq!(parse(lines[2]).unwrap().text, b"");
        assert_eq!(parse(b"{\"log\":\"x\"}"), None);
    }
}
