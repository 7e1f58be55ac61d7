fn main() -> std::process::ExitCode {
    notes::server().run()
}
