//! `.dockerignore`: which files of the build context a build may not see.
//!
//! Docker's rules: one pattern per line, `#` comments, `!` re-includes;
//! patterns are cleaned paths relative to the context (a leading `/` is
//! dropped); `*` and `?` do not cross `/`, `**` does; a pattern that
//! matches a directory matches everything below it; the last pattern that
//! matches a path decides. The CLI already leaves excluded files out of the
//! context it sends; the engine applies the file again because SDKs may
//! not.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Result<Ignore> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (include, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let cleaned = crate::confined::clean(Path::new(pat))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if cleaned.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| {
                    Error::InvalidArgument(format!("invalid .dockerignore pattern {pat:?}: {e}"))
                })?;
            rules.push((glob.compile_matcher(), include));
        }
        Ok(Ignore { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `rel` (relative to the context root) is excluded.
    pub fn excluded(&self, rel: &Path) -> bool {
        let mut excluded = false;
        for (glob, include) in &self.rules {
            if rel
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| glob.is_match(a))
            {
                excluded = !include;
            }
        }
        excluded
    }

    /// Deletes excluded files under `root`. A directory goes only when
    /// nothing below it was re-included.
    pub fn apply(&self, root: &Path) -> std::io::Result<()> {
        if self.rules.is_empty() {
            return Ok(());
        }
        self.prune(root, Path::new(""))?;
        Ok(())
    }

    /// Returns whether `dir` (relative `rel`) is now empty.
    fn prune(&self, root: &Path, rel: &Path) -> std::io::Result<bool> {
        let mut left = 0usize;
        for entry in std::fs::read_dir(root.join(rel))? {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            let is_dir = entry.file_type()?.is_dir();
            let emptied = if is_dir {
                self.prune(root, &child)?
            } else {
                false
            };
            if self.excluded(&child) && (!is_dir || emptied) {
                if is_dir {
                    std::fs::remove_dir(root.join(&child))?;
                } else {
                    std::fs::remove_file(root.join(&child))?;
                }
            } else {
                left += 1;
            }
        }
        Ok(left == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let ig = Ignore::parse("# c\n*.log\n!keep.log\nbuild/\n**/*.tmp\n/secret\ndocs/*/draft\n")
            .unwrap();
        let ex = |p: &str| ig.excluded(Path::new(p));
        assert!(ex("a.log"));
        assert!(!ex("keep.log"));
        assert!(!ex("sub/a.log"), "* does not cross /");
        assert!(ex("build/x/y"));
        assert!(ex("deep/er/f.tmp"));
        assert!(ex("f.tmp"));
        assert!(ex("secret"));
        assert!(ex("docs/en/draft"));
        assert!(!ex("docs/draft"));
        assert!(!ex("src/main.rs"));
    }
}
