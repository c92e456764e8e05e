//! Image references: parsing never panics, and a parsed reference's
//! normalized spelling parses again to the same reference.
#![no_main]

use berth_engine::images::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let normalized = r.normalized();
        let again = Reference::parse(&normalized)
            .unwrap_or_else(|e| panic!("{s:?} normalized to {normalized:?}, which fails: {e}"));
        assert_eq!(again.normalized(), normalized, "from {s:?}");
    }
});
