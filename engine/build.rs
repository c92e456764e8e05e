//! The CRI's messages and services, generated from the written API in
//! api-spec/cri (protox reads the .proto in Rust: no protoc needed).

fn main() {
    let proto = "../api-spec/cri/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let files = protox::compile([proto], ["../api-spec/cri"]).expect("reading the CRI's api.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        // What berthd does not serve yet answers UNIMPLEMENTED by itself.
        .generate_default_stubs(true)
        .compile_fds(files)
        .expect("generating the CRI's server code");
}
