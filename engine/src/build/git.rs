//! `ADD <git repository> <dest>` (BuildKit): the repository is cloned by
//! the `git` command into a directory of the build's, checked out at the
//! ref the URL names, and its tree (or a subdirectory of it) is added like
//! a directory of the context; `.git` goes unless `--keep-git-dir`.
//!
//! Sources are git repositories as BuildKit tells them: `git://…`,
//! `ssh://…`, `git@host:path`, or an `http(s)` URL whose path ends in
//! `.git`; `#ref` and `#ref:subdir` name what to check out.
//! The `git` command rather than a library: it speaks every transport
//! (and the user's SSH and credential set-up) the way users expect.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A repository reference of an ADD source.
#[derive(Debug, PartialEq, Eq)]
pub struct GitSource {
    pub remote: String,
    /// Branch, tag or commit; empty: the remote's default branch.
    pub reference: String,
    /// A directory of the repository to add instead of the whole tree.
    pub subdir: String,
}

impl GitSource {
    /// `None` when `src` is not a git repository.
    pub fn parse(src: &str) -> Option<GitSource> {
        let (remote, fragment) = match src.split_once('#') {
            Some((r, f)) => (r, f),
            None => (src, ""),
        };
        let is_git = remote.starts_with("git://")
            || remote.starts_with("ssh://")
            || (remote.starts_with("git@") && remote.contains(':'))
            || ((remote.starts_with("https://") || remote.starts_with("http://"))
                && remote.trim_end_matches('/').ends_with(".git"));
        if !is_git {
            return None;
        }
        let (reference, subdir) = match fragment.split_once(':') {
            Some((r, d)) => (r, d),
            None => (fragment, ""),
        };
        Some(GitSource {
            remote: remote.to_string(),
            reference: reference.to_string(),
            subdir: subdir.trim_matches('/').to_string(),
        })
    }

    /// The name the source takes in a directory destination: the
    /// repository's, as a file downloaded from a URL takes its last part.
    pub fn name(&self) -> String {
        self.remote
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo")
            .trim_end_matches(".git")
            .to_string()
    }
}

async fn git(args: &[&str], dir: Option<&Path>) -> std::result::Result<String, String> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    let out = cmd
        .args(args)
        // Never wait on a prompt nobody can answer.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Clones `src` into `dir` (made here) and returns the directory to add
/// (the subdirectory, resolved inside the checkout) and the commit.
pub async fn fetch(src: &GitSource, dir: &Path, keep_git_dir: bool) -> Result<(PathBuf, String)> {
    let fail =
        |e: String| Error::InvalidArgument(format!("failed to fetch remote {}: {e}", src.remote));
    let dir_text = dir.to_string_lossy();
    git(
        &[
            "clone",
            "--quiet",
            "--no-checkout",
            "--",
            &src.remote,
            &dir_text,
        ],
        None,
    )
    .await
    .map_err(fail)?;
    let reference = if src.reference.is_empty() {
        "HEAD"
    } else {
        &src.reference
    };
    // A branch, a tag or a commit: whatever rev-parse makes of it, the
    // remote's branches first (`origin/<name>`).
    let commit = match git(
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("origin/{reference}^{{commit}}"),
        ],
        Some(dir),
    )
    .await
    {
        Ok(c) if !c.is_empty() => c,
        _ => git(
            &["rev-parse", "--verify", &format!("{reference}^{{commit}}")],
            Some(dir),
        )
        .await
        .map_err(|_| fail(format!("unknown ref {reference:?}")))?,
    };
    git(&["checkout", "--quiet", "--detach", &commit], Some(dir))
        .await
        .map_err(fail)?;
    if !keep_git_dir {
        std::fs::remove_dir_all(dir.join(".git"))?;
    }
    let root = if src.subdir.is_empty() {
        dir.to_path_buf()
    } else {
        // Resolved inside the checkout: a repository's symlink cannot lead
        // the copy to the host.
        let confined = crate::confined::Confined::open(dir)?;
        let rel = crate::confined::clean(Path::new(&src.subdir)).unwrap_or_default();
        let fd = confined
            .dir(&rel, false, 0)
            .map_err(|_| fail(format!("subdirectory {:?} not found", src.subdir)))?;
        // Held by the caller's copy through the path of the directory
        // itself, not the descriptor: the checkout stays until the step ends.
        std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))?
    };
    Ok((root, commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_sources_are_told_from_urls_and_paths() {
        let g = GitSource::parse("https://example.com/org/app.git#v1.2:docs").unwrap();
        assert_eq!(g.remote, "https://example.com/org/app.git");
        assert_eq!((g.reference.as_str(), g.subdir.as_str()), ("v1.2", "docs"));
        assert_eq!(g.name(), "app");
        assert!(GitSource::parse("git@example.com:org/app.git").is_some());
        assert!(GitSource::parse("git://127.0.0.1:9418/repo#main").is_some());
        assert!(GitSource::parse("https://example.com/file.tar.gz").is_none());
        assert!(GitSource::parse("src/app.git").is_none());
    }
}
