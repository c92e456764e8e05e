fn main() {
    // A panic aborts the shim rather than unwinding through half-done work
    // (a half-written exit file, a stream left open): the core then sees a
    // shim gone without an exit file and stops the container, which is
    // the one state it knows how to recover from. (Cargo cannot set
    // `panic = "abort"` for one package of a workspace's release profile.)
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    std::process::exit(berth_shim::run(std::env::args().skip(1).collect()));
}
