//! Recovery codes: 8 single-use codes per user, for signing in without a passkey.
//!
//! A code is 12 characters from an alphabet without look-alikes (no `0 1 i l o`), shown
//! as `xxxx-xxxx-xxxx`; typed in any case, with or without the dashes. The table keeps an
//! Argon2id hash of each (19 MiB, 2 passes: a stolen database does not give the codes
//! back), never the code. Checking a code costs the same 8 Argon2 runs whoever asks and
//! whatever they type, so the time of an answer tells nothing; the hashing runs on a
//! blocking thread, outside any database transaction.

use argon2::{Algorithm, Argon2, Params, Version};

use super::events::{self, Event};
use super::users::{self, User};
use crate::db::{Conn, DbError, params, utc_now};

/// Codes per user.
pub(crate) const COUNT: usize = 8;
const LENGTH: usize = 12;
const ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Argon2id: m = 19 MiB, t = 2, p = 1 (OWASP's minimum for Argon2id), 32-byte output.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// New codes, as shown: `xxxx-xxxx-xxxx`.
pub(crate) fn new_codes() -> Vec<String> {
    (0..COUNT).map(|_| new_code()).collect()
}

fn new_code() -> String {
    let mut code = String::with_capacity(LENGTH + 2);
    while code.len() < LENGTH + 2 {
        let mut byte = [0u8; 1];
        crate::random::fill(&mut byte);
        // 248 = 8 × 31: the bytes above it would make some characters likelier.
        if byte[0] < 248 {
            if code.len() == 4 || code.len() == 9 {
                code.push('-');
            }
            code.push(ALPHABET[usize::from(byte[0] % 31)] as char);
        }
    }
    code
}

/// A code as typed, as it was hashed: lowercase, without dashes or spaces; `None` if it
/// cannot be one.
pub(crate) fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(code)
}

/// `salt$hash`, both hex: what the table stores of a code.
pub(crate) fn hash(code: &str) -> String {
    let mut salt = [0u8; 16];
    crate::random::fill(&mut salt);
    let out = derive(code, &salt);
    format!("{}${}", hex(&salt), hex(&out))
}

fn derive(code: &str, salt: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let plain = normalize(code).unwrap_or_default();
    argon2().hash_password_into(plain.as_bytes(), salt, &mut out).expect("Argon2 with valid sizes");
    out
}

/// Which of `stored` (up to [`COUNT`] `(id, salt$hash)`) `typed` matches. Always runs
/// [`COUNT`] derivations and compares in constant time.
pub(crate) fn find(typed: &str, stored: &[StoredCode]) -> Option<i64> {
    let code = normalize(typed);
    let mut found = None;
    for slot in 0..COUNT {
        let (id, salt, expected) =
            match stored.get(slot).and_then(|(id, s)| split(s).map(|p| (*id, p))) {
                Some((id, (salt, expected))) => (Some(id), salt, expected),
                None => (None, vec![0u8; 16], vec![0u8; 32]),
            };
        let got = derive(code.as_deref().unwrap_or("-"), &salt);
        if equal(&got, &expected) && code.is_some() && found.is_none() {
            found = id;
        }
    }
    found
}

fn split(stored: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let (salt, hash) = stored.split_once('$')?;
    Some((unhex(salt)?, unhex(hash)?))
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Replaces the user's codes with `hashes` (made with [`hash`] before the transaction).
pub(crate) fn replace(c: &Conn, user: &User, hashes: &[String]) -> Result<(), DbError> {
    c.execute("DELETE FROM recovery_codes WHERE user_id = ?", params![user.id])?;
    for hash in hashes {
        c.execute(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)",
            params![user.id, hash.as_str()],
        )?;
    }
    events::record(c, Event::new("recovery_codes_generated", user))
}

/// A stored code: its row id and `salt$hash`.
pub(crate) type StoredCode = (i64, String);

/// The user named `username` (if active) and their unused codes.
pub(crate) fn unused(c: &Conn, username: &str) -> Result<(Option<User>, Vec<StoredCode>), DbError> {
    let Some(user) = users::by_username(c, username)?.filter(|u| u.is_active) else {
        return Ok((None, Vec::new()));
    };
    let sql = "SELECT id, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL \
               ORDER BY id";
    let codes = c.query(sql, params![user.id])?;
    Ok((Some(user), codes))
}

/// Marks code `id` used; false if another request used it first.
pub(crate) fn use_code(c: &Conn, id: i64) -> Result<bool, DbError> {
    let sql = "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL";
    Ok(c.execute(sql, params![utc_now(), id])? == 1)
}

/// How many unused codes the user has left.
pub(crate) fn remaining(c: &Conn, user_id: i64) -> Result<i64, DbError> {
    let sql = "SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL";
    let (n,): (i64,) = c.query_one(sql, params![user_id])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_twelve_unambiguous_characters_in_three_groups() {
        let codes = new_codes();
        assert_eq!(codes.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!((&code[4..5], &code[9..10]), ("-", "-"), "{code}");
            assert!(normalize(code).is_some(), "{code}");
            assert!(!code.contains(['0', '1', 'i', 'l', 'o']), "{code}");
        }
        assert_ne!(codes[0], codes[1]);
    }

    #[test]
    fn a_code_matches_in_any_case_with_or_without_dashes_and_only_its_own() {
        let codes = new_codes();
        let stored: Vec<(i64, String)> =
            codes.iter().enumerate().take(3).map(|(i, c)| (i as i64 + 1, hash(c))).collect();
        assert_eq!(find(&codes[1], &stored), Some(2));
        assert_eq!(find(&codes[1].to_uppercase().replace('-', ""), &stored), Some(2));
        assert_eq!(find(&format!(" {} ", codes[2].replace('-', " ")), &stored), Some(3));
        assert_eq!(find(&codes[5], &stored), None, "a code that is not stored");
        assert_eq!(find("not-a-code", &stored), None);
        assert_eq!(find(&codes[0], &[]), None);
        assert!(!stored[0].1.contains(&codes[0].replace('-', "")), "only a hash is kept");
    }
}
