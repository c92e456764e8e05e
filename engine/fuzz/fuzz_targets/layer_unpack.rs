//! Image layers: any bytes (gzip, zstd or plain tar) unpacked into a root
//! must not panic and must write nothing outside that root.
#![no_main]

#[path = "sandbox.rs"]
mod sandbox;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static SANDBOX: OnceLock<sandbox::Sandbox> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let sb = SANDBOX.get_or_init(|| sandbox::Sandbox::new("layer"));
    let root = sb.root();
    std::fs::create_dir_all(&root).unwrap();
    let _ = berth_engine::images::unpack::unpack_layer(std::io::Cursor::new(data), &root);
    sb.check_and_reset(&["root"]);
});
