//! The control socket: one request line, one answer line ("ok" or
//! "error <message>"). Requests: `start`, `kill <signal> [all]`,
//! `resize <rows> <cols>`, `close-stdin`.

#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Start,
    Kill { signal: i32, all: bool },
    Resize { rows: u16, cols: u16 },
    CloseStdin,
}

pub fn parse(line: &str) -> Result<Request, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["start"] => Ok(Request::Start),
        ["kill", sig] | ["kill", sig, "all"] => Ok(Request::Kill {
            signal: sig.parse().map_err(|_| format!("bad signal {sig}"))?,
            all: words.len() == 3,
        }),
        ["resize", rows, cols] => Ok(Request::Resize {
            rows: rows.parse().map_err(|_| "bad size".to_string())?,
            cols: cols.parse().map_err(|_| "bad size".to_string())?,
        }),
        ["close-stdin"] => Ok(Request::CloseStdin),
        _ => Err(format!("unknown request {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(parse("start"), Ok(Request::Start));
        assert_eq!(
            parse("kill 9 all"),
            Ok(Request::Kill {
                signal: 9,
                all: true
            })
        );
        assert_eq!(
            parse("kill 15"),
            Ok(Request::Kill {
                signal: 15,
                all: false
            })
        );
        assert_eq!(
            parse("resize 24 80"),
            Ok(Request::Resize { rows: 24, cols: 80 })
        );
        assert!(parse("kill x").is_err());
        assert!(parse("reboot").is_err());
    }
}
