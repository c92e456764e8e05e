//! Runtime error messages in the words Docker clients look for.
//!
//! The docker CLI picks `docker run`'s exit status from the error text:
//! 127 for "executable file not found" or "no such file or directory", 126
//! for "permission denied" or "is a directory". runc writes Go's lowercase
//! errno strings and `exec: "x": executable file not found in $PATH`; crun
//! writes C's capitalised strerror and "executable file `x` not found in
//! $PATH". crun's messages are rephrased here so that users see the same
//! exit statuses whichever runtime runs their container.

/// Rephrases a runtime's message (runc's pass through unchanged).
pub fn docker_wording(message: &str) -> String {
    let mut out = message.to_string();
    // crun: "executable file `nope` not found in $PATH: No such file or directory"
    if let Some(start) = out.find("executable file `") {
        let name_at = start + "executable file `".len();
        if let Some(len) = out[name_at..].find('`') {
            let name = out[name_at..name_at + len].to_string();
            let rest = &out[name_at + len + 1..];
            if let Some(tail) = rest.strip_prefix(" not found") {
                // Drop the errno crun appends: runc's sentence has none.
                let tail = tail.strip_prefix(" in $PATH").unwrap_or(tail);
                let tail = tail
                    .strip_prefix(": No such file or directory")
                    .unwrap_or(tail);
                out = format!(
                    "{}exec: \"{name}\": executable file not found in $PATH{tail}",
                    &out[..start]
                );
            }
        }
    }
    lowercase_errno_strings(&out)
}

/// C's strerror texts as Go spells them ("Permission denied" ->
/// "permission denied"), for the errnos a start or exec can fail with.
fn lowercase_errno_strings(message: &str) -> String {
    const TEXTS: &[&str] = &[
        "No such file or directory",
        "Permission denied",
        "Operation not permitted",
        "Not a directory",
        "Is a directory",
        "Exec format error",
        "Text file busy",
        "Too many levels of symbolic links",
        "Read-only file system",
        "No space left on device",
        "Invalid argument",
        "Device or resource busy",
        "File exists",
    ];
    let mut out = message.to_string();
    for text in TEXTS {
        if out.contains(text) {
            out = out.replace(text, &text.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crun_not_found_reads_like_runc() {
        assert_eq!(
            docker_wording("executable file `nope` not found in $PATH: No such file or directory"),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(
            docker_wording("executable file `/nope` not found in $PATH: No such file or directory"),
            "exec: \"/nope\": executable file not found in $PATH"
        );
    }

    #[test]
    fn errno_texts_are_lowercased_and_runc_is_untouched() {
        assert_eq!(
            docker_wording("open executable: Permission denied"),
            "open executable: permission denied"
        );
        assert_eq!(
            docker_wording("chdir `/etc/passwd`: Not a directory"),
            "chdir `/etc/passwd`: not a directory"
        );
        let runc =
            "unable to start container process: exec: \"nope\": executable file not found in $PATH";
        assert_eq!(docker_wording(runc), runc);
    }
}
