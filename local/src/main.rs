fn main() -> anyhow::Result<()> {
    local::cli::main()
}
