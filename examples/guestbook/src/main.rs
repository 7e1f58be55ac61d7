fn main() -> std::process::ExitCode {
    guestbook::server().run()
}
