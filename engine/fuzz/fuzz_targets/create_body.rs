//! API request decoding: any `POST /containers/create` body is decoded and
//! checked (limits, security options) without a panic; the checks are
//! those that run before anything is stored.
#![no_main]

use berth_engine::api::create_body;
use berth_engine::containers::oci::{resources, security};
use berth_engine::containers::CreateRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(CreateRequest {
        mut host_config, ..
    }) = create_body::decode(data)
    {
        let _ = resources::check(&mut host_config);
        let _ = security::check(&mut host_config);
    }
});
