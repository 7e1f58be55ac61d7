//! What a test needs from the machine besides the server: programs, and root to act as
//! `nobody`. A missing prerequisite is a failure, never a skip.

use std::process::{Command, Stdio};
use std::sync::Mutex;

/// True if `program args…` runs and exits with success (its output discarded).
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the Debian package providing `tool` when it is missing, once; panics if that
/// fails (a missing tool is a failure, never a skip).
pub fn require_tool(tool: &str, package: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let found = || succeeds("sh", &["-c", &format!("command -v {tool}")]);
    if found() {
        return;
    }
    eprintln!("installing {package} for {tool}");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        found(),
        "`{tool}` is required by the tests and could not be installed (apt-get install {package})"
    );
}

/// Fails the test unless it runs as root with `setpriv`, which tests that act as `nobody`
/// need.
pub fn require_nobody() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let setpriv = succeeds("setpriv", &["--version"]);
    assert!(root && setpriv, "this test needs root and setpriv (util-linux) to act as `nobody`");
}
