fn main() -> anyhow::Result<()> {
    berth_supervisor::cli::main()
}
