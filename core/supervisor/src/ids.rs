//! Namespace and task ids become directory names, so they are checked before
//! any path is built from them.

use crate::Error;

pub fn check(kind: &str, id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("invalid {kind} {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn rejects_path_tricks() {
        assert!(check("id", "abc123").is_ok());
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(check("id", bad).is_err(), "{bad:?}");
        }
    }
}
