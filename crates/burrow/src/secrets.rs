//! Secrets generated because none were configured (e.g. a session key), kept for the
//! life of the service rather than of the process.
//!
//! A generated secret is handed to the process that replaces this one on a SIGHUP
//! restart, through a pipe (never the environment, a file or a log), so a reload does not
//! log users out. A stop/start generates new ones: configure real keys for that.
//!
//! In development (`--dev`) they are also kept in [`DEV_KEYS_FILE`] in the working
//! directory (mode 0600, git-ignored), so sessions survive a stop/start while coding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

fn store() -> &'static Mutex<BTreeMap<String, Vec<u8>>> {
    static STORE: OnceLock<Mutex<BTreeMap<String, Vec<u8>>>> = OnceLock::new();
    STORE.get_or_init(Default::default)
}

/// The secret called `name`: inherited from the previous process of a restart, or
/// generated now (`len` random bytes) and kept for the next one.
pub fn generated(name: &str, len: usize) -> Vec<u8> {
    let mut store = store().lock().expect("secrets poisoned");
    if let Some(secret) = store.get(name).filter(|s| s.len() == len) {
        return secret.clone();
    }
    let mut secret = vec![0u8; len];
    crate::random::fill(&mut secret);
    store.insert(name.to_string(), secret.clone());
    secret
}

/// The file `--dev` keeps generated secrets in, in the working directory.
pub(crate) const DEV_KEYS_FILE: &str = ".burrow-dev-keys";

/// `--dev`'s keys file, once [`use_dev_file`] read it, and the names it held.
static DEV_FILE: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();

/// `--dev`: loads the secrets kept in `path` (one `name hex` per line); a secret handed
/// over by a previous process wins. New secrets are written there by [`save_dev_file`].
/// A missing file is no error; an unreadable or malformed one is (one line, no content).
pub(crate) fn use_dev_file(path: &Path) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("--dev: cannot read {}: {e}", path.display())),
    };
    let mut loaded = BTreeMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = line.split_once(' ').and_then(|(name, hex)| Some((name, decode_hex(hex)?)));
        let Some((name, secret)) = parsed else {
            return Err(format!(
                "--dev: line {} of {} is not `name hex`; delete the file to start over",
                n + 1,
                path.display()
            ));
        };
        loaded.insert(name.to_string(), secret);
    }
    let names = loaded.keys().cloned().collect();
    let mut store = store().lock().expect("secrets poisoned");
    for (name, secret) in loaded {
        store.entry(name).or_insert(secret);
    }
    let _ = DEV_FILE.set((path.to_path_buf(), names));
    Ok(())
}

/// `--dev`: writes every secret to the keys file when one is not there yet (mode 0600,
/// replaced atomically). A failure is a warning: sessions then end with the process.
pub(crate) fn save_dev_file() {
    let Some((path, saved)) = DEV_FILE.get() else { return };
    let store = store().lock().expect("secrets poisoned");
    if store.keys().all(|name| saved.contains(name)) {
        return;
    }
    let mut text = String::new();
    for (name, secret) in store.iter() {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{name} {hex}\n"));
    }
    let written = crate::files::TempFile::new(path, 0o600).and_then(|mut file| {
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.persist()
    });
    match written {
        Ok(_) => {
            tracing::info!("--dev: generated keys kept in {} for the next run", path.display())
        }
        Err(e) => tracing::warn!("--dev: cannot write {}: {e}", path.display()),
    }
}

/// True when `--dev` keeps generated secrets in its keys file (see [`use_dev_file`]).
pub fn dev_file_in_use() -> bool {
    DEV_FILE.get().is_some()
}

/// True when `name` came from `--dev`'s keys file.
pub fn from_dev_file(name: &str) -> bool {
    DEV_FILE.get().is_some_and(|(_, names)| names.iter().any(|n| n == name))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// True when `name` came from the previous process rather than being generated here.
pub fn was_inherited(name: &str) -> bool {
    INHERITED.get().is_some_and(|names| names.iter().any(|n| n == name))
}

static INHERITED: OnceLock<Vec<String>> = OnceLock::new();

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Queues a warning about a generated secret, logged once start-up succeeded: a start-up
/// error stays the one line on stderr, and the warning stands next to `ready`.
pub fn warn_once_started(message: String) {
    WARNINGS.lock().expect("warnings poisoned").push(message);
}

/// Logs the queued warnings (the server calls this when booted).
pub(crate) fn flush_warnings() {
    for message in WARNINGS.lock().expect("warnings poisoned").drain(..) {
        tracing::warn!("{message}");
    }
}

/// Names of secrets generated by this process (not configured, not handed over).
pub fn generated_names() -> Vec<String> {
    let store = store().lock().expect("secrets poisoned");
    store.keys().filter(|name| !was_inherited(name)).cloned().collect()
}

/// Serializes every secret for the successor: `name\0len(u32 BE)bytes` repeated.
pub(crate) fn export() -> Vec<u8> {
    let store = store().lock().expect("secrets poisoned");
    let mut out = Vec::new();
    for (name, secret) in store.iter() {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(&(secret.len() as u32).to_be_bytes());
        out.extend_from_slice(secret);
    }
    out
}

/// Loads secrets handed over by the previous process. Malformed input loads nothing.
pub(crate) fn import(mut bytes: &[u8]) {
    let mut parsed = BTreeMap::new();
    while !bytes.is_empty() {
        let Some(nul) = bytes.iter().position(|&b| b == 0) else { return };
        let Ok(name) = std::str::from_utf8(&bytes[..nul]) else { return };
        let rest = &bytes[nul + 1..];
        if rest.len() < 4 {
            return;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            return;
        }
        parsed.insert(name.to_string(), rest[4..4 + len].to_vec());
        bytes = &rest[4 + len..];
    }
    let _ = INHERITED.set(parsed.keys().cloned().collect());
    store().lock().expect("secrets poisoned").extend(parsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = generated("test.a", 32);
        let b = generated("test.b", 16);
        let exported = export();
        store().lock().unwrap().clear();
        import(&exported);
        assert_eq!(generated("test.a", 32), a);
        assert_eq!(generated("test.b", 16), b);
        assert!(was_inherited("test.a"));
        import(b"garbage without structure");
    }

    #[test]
    fn dev_keys_file_lines_are_name_and_hex() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        for bad in ["", "0", "zz", "0g"] {
            assert_eq!(decode_hex(bad), None, "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "session.hash_key 00ff\nno hex here\n").unwrap();
        let err = use_dev_file(&path).unwrap_err();
        assert!(err.contains("line 2") && !err.contains("00ff"), "{err}");
    }
}
