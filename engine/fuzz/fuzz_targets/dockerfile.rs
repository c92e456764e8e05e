//! The Dockerfile parser: any text parses or fails with an error, never a
//! panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = berth_engine::build::dockerfile::parse(text);
    }
});
