//! Docker's journald log driver's entries (sent by [`crate::ship`]), in
//! the journal's native protocol: one datagram per entry, a field per
//! line (`KEY=value`), or, for a value holding a newline, the key, a
//! newline, the value's length as 64-bit little-endian, the value and a
//! newline.
//!
//! Every entry has MESSAGE (the line without its newline; empty lines too,
//! as dockerd sends them), PRIORITY (6 for stdout, 3 for stderr), the
//! container's fields as the engine gave them (CONTAINER_ID,
//! CONTAINER_ID_FULL, CONTAINER_NAME, CONTAINER_TAG, IMAGE_NAME,
//! SYSLOG_IDENTIFIER, and the `labels`/`env` attributes), and
//! CONTAINER_PARTIAL_MESSAGE=true for a piece of a line that did not end.

use berth_proto::shim::Journald;

pub struct Form {
    /// The container's fields, encoded once.
    fields: Vec<u8>,
}

impl Form {
    pub fn new(settings: &Journald) -> Form {
        let mut fields = Vec::new();
        for (key, value) in &settings.fields {
            field(&mut fields, key, value.as_bytes());
        }
        Form { fields }
    }

    pub fn message(&self, stream: u8, line: &[u8], partial: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(line.len() + self.fields.len() + 64);
        field(&mut out, "MESSAGE", line);
        field(&mut out, "PRIORITY", if stream == 2 { b"3" } else { b"6" });
        out.extend_from_slice(&self.fields);
        if partial {
            field(&mut out, "CONTAINER_PARTIAL_MESSAGE", b"true");
        }
        out
    }
}

fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if memchr::memchr(b'\n', value).is_some() {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_in_the_native_protocol() {
        let form = Form::new(&Journald {
            socket: String::new(),
            fields: vec![("CONTAINER_NAME".into(), "web".into())],
            max_buffer: 0,
        });
        assert_eq!(
            form.message(2, b"oops", false),
            b"MESSAGE=oops\nPRIORITY=3\nCONTAINER_NAME=web\n"
        );
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(
            b"a\nb\nPRIORITY=6\nCONTAINER_NAME=web\nCONTAINER_PARTIAL_MESSAGE=true\n",
        );
        assert_eq!(form.message(1, b"a\nb", true), want);
    }
}
