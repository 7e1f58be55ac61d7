//! `bench-app`: the burrow side of `bench/compare.sh` (see `src/lib.rs`).

fn main() -> std::process::ExitCode {
    bench_app::server().run()
}
