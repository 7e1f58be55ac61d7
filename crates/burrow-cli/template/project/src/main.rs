//! The `{{name}}` binary: `{{name}} --help` lists its commands and settings.

fn main() -> std::process::ExitCode {
    {{crate}}::server().run()
}
