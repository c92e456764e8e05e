fn main() -> anyhow::Result<()> {
    berth_engine::cli::main()
}
