//! Build contexts: any request body unpacked as `docker build` does must
//! not panic and must write nothing outside the context directory.
#![no_main]

#[path = "sandbox.rs"]
mod sandbox;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static SANDBOX: OnceLock<sandbox::Sandbox> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let sb = SANDBOX.get_or_init(|| sandbox::Sandbox::new("context"));
    let body = sb.dir.join("body");
    std::fs::write(&body, data).unwrap();
    let _ = berth_engine::build::context::unpack(&body, &sb.root(), "Dockerfile");
    sb.check_and_reset(&["root", "body"]);
});
