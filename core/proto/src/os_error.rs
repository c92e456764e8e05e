//! System errors in the words Go prints them, which Docker's clients and
//! users see in dockerd's messages ("dial tcp 127.0.0.1:1: connect:
//! connection refused", "stat /x: no such file or directory"): the C
//! library's text with its first letter small, without Rust's
//! " (os error N)". One function for the engine and the shim.

/// `e` as Go would print it; an error that is not the system's, as it is.
pub fn go_text(e: &std::io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let full = e.to_string();
    let text = full
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&full);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => full.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_errors_read_as_go_prints_them() {
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(go_text(&refused), "connection refused");
        let missing = std::io::Error::from_raw_os_error(2);
        assert_eq!(go_text(&missing), "no such file or directory");
        let other = std::io::Error::other("Custom words");
        assert_eq!(go_text(&other), "Custom words");
    }
}
