fn main() {
    std::process::exit(berth_shim::run(std::env::args().skip(1).collect()));
}
