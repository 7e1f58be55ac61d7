//! `bench-app`: the burrow side of `bench/compare.sh` (see `src/lib.rs`).

// Burrow's allocator: less CPU per request than the system's under load (see
// `burrow::Allocator`).
#[global_allocator]
static ALLOCATOR: burrow::Allocator = burrow::Allocator;

fn main() -> std::process::ExitCode {
    bench_app::server().run()
}
