#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    local::allocator::return_freed_memory_at_once();
    local::allocator::without_huge_pages();
    local::cli::main()
}
