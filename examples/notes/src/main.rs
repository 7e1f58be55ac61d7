// Burrow's allocator: less CPU per request than the system's under load (see
// `burrow::Allocator`).
#[global_allocator]
static ALLOCATOR: burrow::Allocator = burrow::Allocator;

fn main() -> std::process::ExitCode {
    notes::server().run()
}
