//! Word processing of Dockerfile arguments, as the builder (not a shell)
//! does it for ENV, ARG, LABEL, COPY, WORKDIR and the other instructions
//! that take variables: quotes are removed, the escape character escapes,
//! and `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` (and the forms
//! without `:`) are replaced from the build's environment.

use crate::error::{Error, Result};

/// Variables visible to a step: later entries win.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl Lookup for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Lookup,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Reads words separated by unquoted blanks; with `split` false the
    /// whole input is one word (blanks kept).
    fn words(&mut self, split: bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut any = false;
        while let Some(c) = self.next() {
            match c {
                c if split && c.is_whitespace() => {
                    if any {
                        out.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                '\'' => {
                    any = true;
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(c) => cur.push(c),
                            None => return Err(unclosed("'")),
                        }
                    }
                }
                '"' => {
                    any = true;
                    loop {
                        match self.next() {
                            Some('"') => break,
                            Some('$') => cur.push_str(&self.variable()?),
                            Some(c) if c == self.escape => match self.next() {
                                Some(n @ ('"' | '$')) => cur.push(n),
                                Some(n) if n == self.escape => cur.push(n),
                                Some(n) => {
                                    cur.push(c);
                                    cur.push(n);
                                }
                                None => cur.push(c),
                            },
                            Some(c) => cur.push(c),
                            None => return Err(unclosed("\"")),
                        }
                    }
                }
                '$' => {
                    any = true;
                    cur.push_str(&self.variable()?);
                }
                c if c == self.escape => {
                    any = true;
                    match self.next() {
                        Some(n) => cur.push(n),
                        None => cur.push(c),
                    }
                }
                c => {
                    any = true;
                    cur.push(c);
                }
            }
        }
        if any || !split {
            out.push(cur);
        }
        Ok(out)
    }

    /// After a `$`: the value of `NAME`, `{NAME}` or `{NAME:-word}`.
    fn variable(&mut self) -> Result<String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(bad_substitution(self));
                }
                match self.next() {
                    Some('}') => Ok(self.env.get(&name).unwrap_or_default()),
                    Some(c @ (':' | '-' | '+' | '?')) => {
                        let (colon, op) = if c == ':' {
                            (true, self.next().ok_or_else(|| bad_substitution(self))?)
                        } else {
                            (false, c)
                        };
                        let word = self.until_brace()?;
                        let value = self.env.get(&name);
                        let set = match &value {
                            Some(v) => !(colon && v.is_empty()),
                            None => false,
                        };
                        match op {
                            '-' => Ok(if set { value.unwrap_or_default() } else { word }),
                            '+' => Ok(if set { word } else { String::new() }),
                            '?' if set => Ok(value.unwrap_or_default()),
                            '?' => Err(Error::InvalidArgument(format!(
                                "{name}: {}",
                                if word.is_empty() {
                                    "is not allowed to be unset"
                                } else {
                                    &word
                                }
                            ))),
                            _ => Err(bad_substitution(self)),
                        }
                    }
                    _ => Err(bad_substitution(self)),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.env.get(&name).unwrap_or_default())
            }
            // A lone `$` stays.
            _ => Ok("$".to_string()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// The word of `${VAR:-word}` up to the closing brace, itself processed.
    fn until_brace(&mut self) -> Result<String> {
        let mut word = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(word),
                Some('$') => word.push_str(&self.variable()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        word.push(n);
                    }
                }
                Some(c) => word.push(c),
                None => return Err(Error::InvalidArgument("missing '}' in substitution".into())),
            }
        }
    }
}

fn unclosed(q: &str) -> Error {
    Error::InvalidArgument(format!(
        "unexpected end of statement while looking for matching {q}"
    ))
}

fn bad_substitution(l: &Lexer<'_>) -> Error {
    Error::InvalidArgument(format!(
        "failed to process \"{}\": bad substitution",
        l.chars.iter().collect::<String>()
    ))
}

/// Variables replaced in free text (a heredoc's body): no quote removal,
/// no splitting; `\$` keeps a dollar sign.
pub fn expand_vars(s: &str, env: &dyn Lookup) -> Result<String> {
    let mut l = Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape: '\\',
        env,
    };
    let mut out = String::new();
    while let Some(c) = l.next() {
        match c {
            '$' => out.push_str(&l.variable()?),
            '\\' if l.peek() == Some('$') => {
                l.pos += 1;
                out.push('$');
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One word: quotes removed, variables replaced, blanks kept.
pub fn word(s: &str, escape: char, env: &dyn Lookup) -> Result<String> {
    let mut l = Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        env,
    };
    Ok(l.words(false)?.pop().unwrap_or_default())
}

/// Several words split on unquoted blanks.
pub fn words(s: &str, escape: char, env: &dyn Lookup) -> Result<Vec<String>> {
    let mut l = Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        env,
    };
    l.words(true)
}

/// `KEY=VALUE KEY2="two words"` or the legacy single `KEY VALUE` (ENV,
/// LABEL). Keys are processed too.
pub fn pairs(s: &str, escape: char, env: &dyn Lookup, what: &str) -> Result<Vec<(String, String)>> {
    let ws = words(s, escape, env)?;
    if ws.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what} requires at least one argument"
        )));
    }
    // The raw first word decides the form, before quotes are removed.
    let first_raw = s.split_whitespace().next().unwrap_or("");
    if !first_raw.contains('=') {
        let (k, v) = s
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| Error::InvalidArgument(format!("{what} must have two arguments")))?;
        return Ok(vec![(word(k, escape, env)?, word(v.trim(), escape, env)?)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(Error::InvalidArgument(format!(
                "{what} names can not be blank"
            ))),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(Error::InvalidArgument(format!(
                "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("A".into(), "one".into()), ("E".into(), String::new())]
    }

    #[test]
    fn expansion() {
        let e = env();
        assert_eq!(word("$A/${A}x", '\\', &e).unwrap(), "one/onex");
        assert_eq!(
            word("${B:-def} ${A:+alt} ${E:-e} ${E-e}", '\\', &e).unwrap(),
            "def alt e "
        );
        assert_eq!(word("'$A' \"$A\" \\$A", '\\', &e).unwrap(), "$A one $A");
        assert_eq!(word("cost $", '\\', &e).unwrap(), "cost $");
        assert!(word("${", '\\', &e).is_err());
        assert!(word("\"open", '\\', &e).is_err());
    }

    #[test]
    fn splitting_and_pairs() {
        let e = env();
        assert_eq!(
            words("a  \"b c\" $A", '\\', &e).unwrap(),
            vec!["a", "b c", "one"]
        );
        assert_eq!(
            pairs("X=1 Y=\"two words\" Z=$A", '\\', &e, "ENV").unwrap(),
            vec![
                ("X".into(), "1".into()),
                ("Y".into(), "two words".into()),
                ("Z".into(), "one".into())
            ]
        );
        assert_eq!(
            pairs("K v w", '\\', &e, "ENV").unwrap(),
            vec![("K".into(), "v w".into())]
        );
        assert!(pairs("=x", '\\', &e, "ENV").is_err());
    }
}
