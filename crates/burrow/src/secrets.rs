//! Secrets generated because none were configured (e.g. a session key), kept for the
//! life of the service rather than of the process.
//!
//! A generated secret is handed to the process that replaces this one on a SIGHUP
//! restart, through a pipe (never the environment, a file or a log), so a reload does not
//! log users out. A stop/start generates new ones: configure real keys for that.
//!
//! ```
//! let key = burrow::secrets::generated("session.hash_key", 32);
//! assert_eq!(key.len(), 32);
//! assert_eq!(burrow::secrets::generated("session.hash_key", 32), key, "stable within the process");
//! ```

use std::collections::BTreeMap;
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
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).expect("system random");
    store.insert(name.to_string(), secret.clone());
    secret
}

/// True when `name` came from the previous process rather than being generated here.
pub fn was_inherited(name: &str) -> bool {
    INHERITED.get().is_some_and(|names| names.iter().any(|n| n == name))
}

static INHERITED: OnceLock<Vec<String>> = OnceLock::new();

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
}
