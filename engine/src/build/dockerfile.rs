//! The Dockerfile parser: parser directives (`# escape=`, `# syntax=`),
//! comments, line continuations, heredocs (`<<EOF`), and each instruction
//! split into its name, its `--flags` and its arguments. Variables are not
//! expanded here; that happens per step, with the environment of the
//! moment (`words.rs`).

use crate::error::{Error, Result};

/// Instructions the legacy builder knows.
const KNOWN: &[&str] = &[
    "from",
    "run",
    "cmd",
    "label",
    "maintainer",
    "expose",
    "env",
    "add",
    "copy",
    "entrypoint",
    "volume",
    "user",
    "workdir",
    "arg",
    "onbuild",
    "stopsignal",
    "healthcheck",
    "shell",
];

/// The arguments of an instruction: the JSON array form (`["a", "b"]`) or
/// the text that follows the name and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Exec(Vec<String>),
    Shell(String),
}

/// A heredoc attached to an instruction (`COPY <<EOF /x` or `RUN <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub body: String,
    /// `<<"EOF"` or `<<'EOF'`: the body's variables are not expanded.
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Lower-case name ("run").
    pub name: String,
    /// `--name=value` flags in order (a bare `--flag` has an empty value).
    pub flags: Vec<(String, String)>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
    /// The instruction as written (continuations joined), for "Step 2/5 : …".
    pub original: String,
    /// 1-based line of the instruction's first line.
    pub line: usize,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The argument text, whichever form it was written in.
    pub fn text(&self) -> String {
        match &self.args {
            Args::Shell(s) => s.clone(),
            Args::Exec(v) => v.join(" "),
        }
    }

    /// Refuses flags this instruction does not take, as Docker does.
    pub fn allow_flags(&self, allowed: &[&str]) -> Result<()> {
        for (name, _) in &self.flags {
            if !allowed.contains(&name.as_str()) {
                return Err(parse_error(self.line, format!("Unknown flag: {name}")));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Dockerfile {
    pub instructions: Vec<Instruction>,
    pub escape: char,
    /// Messages for the build output (an ignored syntax directive).
    pub warnings: Vec<String>,
}

fn parse_error(line: usize, msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("dockerfile parse error line {line}: {msg}"))
}

/// Reads the parser directives at the top: `# key=value` lines before
/// anything else. Returns the escape character and warnings.
fn directives(lines: &[&str]) -> Result<(char, Vec<String>, usize)> {
    let mut escape = '\\';
    let mut warnings = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut consumed = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        let value = value.trim();
        match key.as_str() {
            "escape" => {
                escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(parse_error(
                            i + 1,
                            format!("invalid escape token '{other}' does not match ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => warnings.push(format!(
                "[WARNING]: Dockerfile syntax directive '{value}' is ignored: the legacy builder does not use frontends"
            )),
            // Unknown directives are comments, and end the directive block.
            _ => break,
        }
        if !seen.insert(key.clone()) {
            return Err(parse_error(
                i + 1,
                format!("only one {key} parser directive can be used"),
            ));
        }
        consumed = i + 1;
    }
    Ok((escape, warnings, consumed))
}

/// Whether a physical line ends in the escape character (a continuation);
/// returns the line without it.
fn continues(line: &str, escape: char) -> Option<&str> {
    let trimmed = line.trim_end();
    trimmed.strip_suffix(escape)
}

/// Heredoc markers in an instruction line: `<<EOF`, `<<-EOF`, `<<"EOF"`.
/// Returns (name, strip leading tabs, quoted) for each.
fn heredoc_markers(text: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("<<") {
        let mut after = &rest[pos + 2..];
        let strip = after.starts_with('-');
        if strip {
            after = &after[1..];
        }
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
        // What follows the marker: past the quotes when quoted (a missing
        // closing quote takes the rest of the line; found by fuzzing, the
        // old slice fell inside a multi-byte character).
        let (body, consumed) = match quote {
            Some(q) => {
                let inner = &after[q.len_utf8()..];
                let body = inner.split(q).next().unwrap_or("");
                let closed = inner.len() > body.len();
                (
                    body,
                    q.len_utf8() + body.len() + if closed { q.len_utf8() } else { 0 },
                )
            }
            None => {
                let body = after
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("");
                (body, body.len())
            }
        };
        if !body.is_empty() && body.chars().next().is_some_and(|c| !c.is_ascii_digit()) {
            out.push((body.to_string(), strip, quote.is_some()));
        }
        rest = &after[consumed..];
    }
    out
}

pub fn parse(text: &str) -> Result<Dockerfile> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let (escape, warnings, start) = directives(&lines)?;
    let mut instructions = Vec::new();
    let mut i = start;
    while i < lines.len() {
        let first = lines[i];
        let trimmed = first.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let line_no = i + 1;
        // Join continuation lines; comment and empty lines inside are skipped.
        let mut logical = String::new();
        let mut cur = trimmed;
        loop {
            i += 1;
            match continues(cur, escape) {
                Some(head) => {
                    logical.push_str(head);
                    loop {
                        if i >= lines.len() {
                            cur = "";
                            break;
                        }
                        let next = lines[i];
                        let t = next.trim_start();
                        if t.starts_with('#') || t.is_empty() {
                            i += 1;
                            continue;
                        }
                        cur = next;
                        break;
                    }
                    if i >= lines.len() && cur.is_empty() {
                        break;
                    }
                }
                None => {
                    logical.push_str(cur);
                    break;
                }
            }
        }
        let logical = logical.trim().to_string();
        let (word, rest) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((logical.as_str(), ""));
        let name = word.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            return Err(parse_error(line_no, format!("unknown instruction: {word}")));
        }
        // Heredocs only where BuildKit allows them: RUN, COPY and ADD.
        let mut heredocs = Vec::new();
        if matches!(name.as_str(), "run" | "copy" | "add") {
            for (hname, strip, quoted) in heredoc_markers(rest) {
                let mut body = String::new();
                loop {
                    let Some(l) = lines.get(i) else {
                        return Err(parse_error(
                            line_no,
                            format!("unterminated heredoc {hname}"),
                        ));
                    };
                    i += 1;
                    let l = if strip { l.trim_start_matches('\t') } else { l };
                    if l == hname {
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                heredocs.push(Heredoc {
                    name: hname,
                    body,
                    quoted,
                });
            }
        }
        let (flags, args_text) = split_flags(rest.trim_start());
        let args = if matches!(
            name.as_str(),
            "env" | "label" | "arg" | "maintainer" | "onbuild"
        ) {
            Args::Shell(args_text.to_string())
        } else {
            json_args(args_text).map_or_else(|| Args::Shell(args_text.to_string()), Args::Exec)
        };
        if name != "onbuild"
            && name != "healthcheck"
            && args_text.trim().is_empty()
            && !matches!(name.as_str(), "cmd" | "entrypoint" | "run")
        {
            return Err(parse_error(
                line_no,
                format!(
                    "{} requires at least one argument",
                    name.to_ascii_uppercase()
                ),
            ));
        }
        instructions.push(Instruction {
            name,
            flags,
            args,
            heredocs,
            original: logical.clone(),
            line: line_no,
        });
    }
    if instructions.is_empty() {
        return Err(Error::InvalidArgument(
            "the Dockerfile cannot be empty".into(),
        ));
    }
    Ok(Dockerfile {
        instructions,
        escape,
        warnings,
    })
}

/// Parses one instruction written on its own (an ONBUILD trigger).
pub fn parse_one(text: &str, line: usize) -> Result<Instruction> {
    let mut df = parse(text).map_err(|e| match e {
        Error::InvalidArgument(m) => {
            Error::InvalidArgument(m.replace("line 1:", &format!("line {line}:")))
        }
        other => other,
    })?;
    let mut ins = df.instructions.remove(0);
    ins.line = line;
    Ok(ins)
}

/// Leading `--name=value` words.
fn split_flags(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    while let Some(rest) = s.strip_prefix("--") {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.is_empty() {
            break;
        }
        let (n, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((n.to_ascii_lowercase(), v.to_string()));
        s = rest[end..].trim_start();
    }
    (flags, s)
}

/// `["a", "b"]`: a JSON array of strings, else `None` (shell form).
fn json_args(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclosed_quoted_heredoc_marker_with_multibyte_text_is_no_panic() {
        // Found by `contrib/fuzz.sh` (target dockerfile).
        let _ = parse("run\u{b}\u{4}#<<<<'env\0\0 e\u{feff}");
        assert_eq!(
            heredoc_markers("<<'EOF' x"),
            [("EOF".to_string(), false, true)]
        );
    }

    #[test]
    fn instructions_flags_and_forms() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n# escape=\\\n\nFROM --platform=linux/amd64 busybox AS base\n# comment\nRUN echo a \\\n  # inside\n  && echo b\nCMD [\"sh\", \"-c\", \"x\"]\ncopy --chown=1:2 a b /c/\n",
        )
        .unwrap();
        assert_eq!(df.warnings.len(), 1);
        let i = &df.instructions;
        assert_eq!(i.len(), 4);
        assert_eq!(i[0].name, "from");
        assert_eq!(i[0].flag("platform"), Some("linux/amd64"));
        assert_eq!(i[0].args, Args::Shell("busybox AS base".into()));
        assert_eq!(i[1].args, Args::Shell("echo a   && echo b".into()));
        assert_eq!(i[1].line, 6);
        assert_eq!(
            i[2].args,
            Args::Exec(vec!["sh".into(), "-c".into(), "x".into()])
        );
        assert_eq!(i[3].name, "copy");
        assert_eq!(i[3].flag("chown"), Some("1:2"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM busybox\nBOGUS x\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "dockerfile parse error line 2: unknown instruction: BOGUS"
        );
        assert!(parse("# escape=x\nFROM a").is_err());
        assert!(parse("\n# just a comment\n").is_err());
    }

    #[test]
    fn escape_directive_and_heredocs() {
        let df = parse("# escape=`\nFROM a\nRUN echo `\n  hi\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-'X' /f\n\tbody $A\nX\n").unwrap();
        let i = &df.instructions;
        assert_eq!(i[1].args, Args::Shell("echo   hi".into()));
        assert_eq!(i[2].heredocs[0].body, "echo one\necho two\n");
        assert_eq!(i[3].heredocs[0].name, "X");
        assert!(i[3].heredocs[0].quoted);
        assert_eq!(i[3].heredocs[0].body, "body $A\n");
    }
}
