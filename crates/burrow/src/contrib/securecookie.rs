//! Signed, optionally encrypted cookie values (gorilla/securecookie semantics, on ring).
//!
//! `value = TIMESTAMP "." PAYLOAD "." MAC`, where
//! - PAYLOAD is base64url of the bytes, or of `nonce ‖ AES-256-GCM(bytes)` (associated
//!   data: the cookie name) when a block key is set, so values cannot be read;
//! - MAC is base64url of HMAC-SHA256(hash key, `NAME "|" TIMESTAMP "|" PAYLOAD`): the name is
//!   covered, so a value cannot be replayed under another cookie name, and so is the
//!   timestamp, so expiry is enforced by the server, not only by the browser.
//!
//! Previous keys are accepted when reading (rotation); new values use the current keys.
//! Decoding never panics and never says why it failed beyond `None`: a bad cookie is no
//! cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

/// The largest cookie (name, `=` and value) browsers keep.
pub const MAX_COOKIE_SIZE: usize = 4096;

/// Keys for one cookie codec: the current ones first, then previous ones for reading.
#[derive(Clone)]
pub struct Codec {
    hash: Vec<hmac::Key>,
    block: Vec<LessSafeKey>,
    max_age: u64,
    /// Tells this codec's values in the [`verified`] cache from other codecs' (other keys).
    id: u64,
}

/// Encoding failed because the value does not fit in a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub size: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the cookie would be {} bytes, more than the {MAX_COOKIE_SIZE} browsers keep",
            self.size
        )
    }
}

impl std::error::Error for TooLarge {}

impl Codec {
    /// `hash_keys[0]` signs; `block_keys[0]` (if any) encrypts. Keys are 32 bytes.
    pub fn new(hash_keys: &[[u8; 32]], block_keys: &[[u8; 32]], max_age_secs: u64) -> Codec {
        Codec {
            hash: hash_keys.iter().map(|k| hmac::Key::new(hmac::HMAC_SHA256, k)).collect(),
            block: block_keys
                .iter()
                .map(|k| {
                    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k).expect("32-byte AES key"))
                })
                .collect(),
            max_age: max_age_secs,
            id: verified::new_codec(),
        }
    }

    pub fn max_age(&self) -> u64 {
        self.max_age
    }

    /// Encodes `bytes` as the value of cookie `name`, stamped with `now` (Unix seconds).
    pub fn encode(&self, name: &str, bytes: &[u8], now: u64) -> Result<String, TooLarge> {
        let payload = match self.block.first() {
            Some(key) => {
                let mut nonce = [0u8; NONCE_LEN];
                crate::random::fill(&mut nonce);
                let mut sealed = bytes.to_vec();
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(name.as_bytes()),
                    &mut sealed,
                )
                .expect("AES-GCM sealing cannot fail for cookie-sized input");
                let mut out = nonce.to_vec();
                out.extend_from_slice(&sealed);
                B64.encode(out)
            }
            None => B64.encode(bytes),
        };
        let ts = now.to_string();
        let tag = hmac::sign(&self.hash[0], &signed_message(name, &ts, &payload));
        let value = format!("{ts}.{payload}.{}", B64.encode(tag.as_ref()));
        let size = name.len() + 1 + value.len();
        if size > MAX_COOKIE_SIZE {
            return Err(TooLarge { size });
        }
        Ok(value)
    }

    /// Decodes a value of cookie `name`; `None` for anything not made by these keys,
    /// older than max age, or from the future.
    pub fn decode(&self, name: &str, value: &str, now: u64) -> Option<Vec<u8>> {
        if value.len() > MAX_COOKIE_SIZE {
            return None;
        }
        let (stamped, bytes) =
            verified::remembered(self.id, name, value, || self.verify(name, value))?;
        // A minute of clock skew between processes is tolerated.
        if stamped > now.saturating_add(60) || now.saturating_sub(stamped) > self.max_age {
            return None;
        }
        Some(bytes)
    }

    /// The timestamp and the bytes of a value these keys made (whatever its age); `None`
    /// for any other.
    fn verify(&self, name: &str, value: &str) -> Option<(u64, Vec<u8>)> {
        let mut parts = value.splitn(3, '.');
        let (ts, payload, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let mac = B64.decode(mac).ok()?;
        let message = signed_message(name, ts, payload);
        if !self.hash.iter().any(|key| hmac::verify(key, &message, &mac).is_ok()) {
            return None;
        }
        let stamped: u64 = ts.parse().ok()?;
        let bytes = B64.decode(payload).ok()?;
        if self.block.is_empty() {
            return Some((stamped, bytes));
        }
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.block.iter().find_map(|key| {
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut buf = sealed.to_vec();
            key.open_in_place(nonce, Aad::from(name.as_bytes()), &mut buf)
                .ok()
                .map(|plain| (stamped, plain.to_vec()))
        })
    }
}

/// Values each thread verified lately, so that a browser's next request with the same
/// cookie skips the HMAC (and the decryption). A signed-in page checks two cookies (the
/// session's and the CSRF app's), and their two HMACs were 8% of its instructions (issue
/// 13, bench/README.md step 59).
///
/// It changes no answer: whether a value is authentic depends on the value and the
/// codec's keys only, and both are the cache's key; the age is checked on every decode.
/// Only authentic values go in, so a client can only fill it with cookies it was given.
/// A value's slot comes from its MAC, which no client chooses, and the value is compared
/// in constant time, so the time a decode takes says nothing about other clients'
/// cookies. Per thread, so a lookup takes no lock; direct-mapped, so a value pushed out by
/// another is verified again. A thread keeps at most [`SLOTS`] values of up to
/// [`LONGEST`] bytes: about 40 KB with session-sized cookies, at most 250 KB.
mod verified {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Values a thread keeps: more than the browsers a worker thread serves at once on a
    /// small server; one more than fits costs one HMAC.
    const SLOTS: usize = 128;

    /// Longer values (large sessions) are verified every time: a slot holds the value
    /// and its decoded bytes, and 128 of 4 KB cookies would keep 1 MB per thread.
    const LONGEST: usize = 1024;

    pub(super) fn new_codec() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    struct Entry {
        codec: u64,
        name: Box<str>,
        value: Box<str>,
        stamped: u64,
        bytes: Box<[u8]>,
    }

    struct Cache {
        /// Mixed into the slot's choice, so that no two processes share a layout.
        key: u64,
        slots: Vec<Option<Entry>>,
    }

    /// A value's slot, from its last 16 bytes: its MAC's, random for every value that can
    /// be in the cache, so they spread values over the slots as well as a hash of the
    /// whole value would, at a few instructions (the value is compared whole).
    fn slot_of(key: u64, codec: u64, value: &[u8]) -> usize {
        let mut tail = [0u8; 16];
        let last = &value[value.len().saturating_sub(16)..];
        tail[16 - last.len()..].copy_from_slice(last);
        let (a, b) = tail.split_at(8);
        let a = u64::from_le_bytes(a.try_into().expect("8 bytes")) ^ key;
        let b = u64::from_le_bytes(b.try_into().expect("8 bytes")) ^ codec;
        let product = u128::from(a) * u128::from(b | 1);
        ((product as u64) ^ ((product >> 64) as u64)) as usize % SLOTS
    }

    thread_local! {
        static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
    }

    /// `verify`'s answer for `value` of cookie `name`: this thread's copy when it
    /// verified the same value with the same codec before.
    pub(super) fn remembered(
        codec: u64,
        name: &str,
        value: &str,
        verify: impl FnOnce() -> Option<(u64, Vec<u8>)>,
    ) -> Option<(u64, Vec<u8>)> {
        if value.len() > LONGEST {
            return verify();
        }
        CACHE.with_borrow_mut(|cache| {
            let cache = cache.get_or_insert_with(|| Cache {
                key: {
                    let mut key = [0u8; 8];
                    crate::random::fill(&mut key);
                    u64::from_le_bytes(key)
                },
                slots: (0..SLOTS).map(|_| None).collect(),
            });
            let slot = &mut cache.slots[slot_of(cache.key, codec, value.as_bytes())];
            if let Some(entry) = slot
                && entry.codec == codec
                && super::same_bytes(entry.name.as_bytes(), name.as_bytes())
                && super::same_bytes(entry.value.as_bytes(), value.as_bytes())
            {
                return Some((entry.stamped, entry.bytes.to_vec()));
            }
            let (stamped, bytes) = verify()?;
            *slot = Some(Entry {
                codec,
                name: name.into(),
                value: value.into(),
                stamped,
                bytes: bytes.as_slice().into(),
            });
            Some((stamped, bytes))
        })
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn signed_message(name: &str, ts: &str, payload: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(name.len() + ts.len() + payload.len() + 2);
    m.extend_from_slice(name.as_bytes());
    m.push(b'|');
    m.extend_from_slice(ts.as_bytes());
    m.push(b'|');
    m.extend_from_slice(payload.as_bytes());
    m
}

/// Parses a key written as 64 hex characters.
pub fn parse_key(raw: &str) -> Result<[u8; 32], String> {
    let raw = raw.trim();
    if raw.len() != 64 {
        return Err(format!(
            "expected 32 bytes written as 64 hex characters, got {} characters",
            raw.len()
        ));
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&raw[2 * i..2 * i + 2], 16)
            .map_err(|_| "expected hex characters (0-9, a-f)".to_string())?;
    }
    Ok(key)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];
    const B1: [u8; 32] = [3; 32];

    #[test]
    fn round_trip_signed_and_encrypted() {
        for codec in [Codec::new(&[K1], &[], 60), Codec::new(&[K1], &[B1], 60)] {
            let v = codec.encode("_session", b"{\"user\":42}", 1000).unwrap();
            assert_eq!(codec.decode("_session", &v, 1010).as_deref(), Some(&b"{\"user\":42}"[..]));
            assert_eq!(codec.decode("_other", &v, 1010), None, "the name is signed");
            assert_eq!(codec.decode("_session", &v, 1061), None, "expired");
            assert_eq!(codec.decode("_session", &v, 900), None, "from the future");
        }
    }

    #[test]
    fn encrypted_values_are_unreadable() {
        let codec = Codec::new(&[K1], &[B1], 60);
        let v = codec.encode("_session", b"secret-value-123", 1000).unwrap();
        let payload = B64.decode(v.split('.').nth(1).unwrap()).unwrap();
        assert!(!payload.windows(6).any(|w| w == b"secret"));
        assert!(!v.contains(&B64.encode(b"secret-value-123")));
    }

    #[test]
    fn rotation_reads_old_keys_and_writes_new_ones() {
        let old = Codec::new(&[K1], &[B1], 60);
        let rotated = Codec::new(&[K2, K1], &[[4; 32], B1], 60);
        let v = old.encode("s", b"x", 1000).unwrap();
        assert_eq!(rotated.decode("s", &v, 1000).as_deref(), Some(&b"x"[..]));
        let fresh = rotated.encode("s", b"y", 1000).unwrap();
        assert_eq!(old.decode("s", &fresh, 1000), None, "new values use the new key");
        assert_eq!(Codec::new(&[K2], &[], 60).decode("s", &v, 1000), None, "a foreign key");
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let codec = Codec::new(&[K1], &[B1], 60);
        let v = codec.encode("s", b"payload", 1000).unwrap();
        for i in 0..v.len() {
            let mut bytes = v.clone().into_bytes();
            bytes[i] ^= 0x01;
            if let Ok(s) = String::from_utf8(bytes) {
                assert_eq!(codec.decode("s", &s, 1000), None, "byte {i}");
            }
        }
    }

    /// A value verified once is not verified again by the same thread and codec; a value
    /// that failed, another codec's, or a long one is.
    #[test]
    fn verified_values_are_remembered_per_codec() {
        let (codec, other) = (verified::new_codec(), verified::new_codec());
        let again = || -> Option<(u64, Vec<u8>)> { panic!("verified again") };
        let found = verified::remembered(codec, "s", "1.a.b", || Some((1, b"x".to_vec())));
        assert_eq!(found, Some((1, b"x".to_vec())));
        assert_eq!(verified::remembered(codec, "s", "1.a.b", again), Some((1, b"x".to_vec())));
        let calls = std::cell::Cell::new(0);
        let count = |answer: Option<(u64, Vec<u8>)>| {
            calls.set(calls.get() + 1);
            answer
        };
        assert_eq!(verified::remembered(other, "s", "1.a.b", || count(None)), None);
        assert_eq!(verified::remembered(codec, "t", "1.a.b", || count(None)), None);
        assert_eq!(verified::remembered(codec, "s", "1.a.c", || count(None)), None);
        assert_eq!(verified::remembered(codec, "s", "1.a.c", || count(None)), None);
        assert_eq!(calls.get(), 4, "a value that failed is verified every time");
        let long = format!("1.{}.b", "a".repeat(2000));
        verified::remembered(codec, "s", &long, || count(Some((1, vec![]))));
        verified::remembered(codec, "s", &long, || count(Some((1, vec![]))));
        assert_eq!(calls.get(), 6, "a long value is verified every time");
        // The first value is still there after the others.
        assert_eq!(verified::remembered(codec, "s", "1.a.b", again), Some((1, b"x".to_vec())));
    }

    /// Through the cache, a value still expires, and still decodes only under its name
    /// and with its keys.
    #[test]
    fn a_remembered_value_is_checked_like_a_new_one() {
        let codec = Codec::new(&[K1], &[B1], 60);
        let v = codec.encode("s", b"x", 1000).unwrap();
        assert_eq!(codec.decode("s", &v, 1000).as_deref(), Some(&b"x"[..]));
        assert_eq!(codec.decode("s", &v, 1059).as_deref(), Some(&b"x"[..]));
        assert_eq!(codec.decode("s", &v, 1061), None, "expired");
        assert_eq!(codec.decode("s", &v, 900), None, "from the future");
        assert_eq!(codec.decode("t", &v, 1000), None, "another name");
        assert_eq!(Codec::new(&[K2], &[B1], 60).decode("s", &v, 1000), None, "other keys");
        assert_eq!(codec.clone().decode("s", &v, 1000).as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn too_large_is_an_error() {
        let codec = Codec::new(&[K1], &[], 60);
        let err = codec.encode("s", &vec![b'a'; 4000], 1000).unwrap_err();
        assert!(err.size > MAX_COOKIE_SIZE);
    }

    /// Property test: 200k random and mutated inputs never panic, and a mutated cookie
    /// never decodes unless the mutation left it unchanged.
    #[test]
    fn decoding_random_and_mutated_input_never_panics() {
        let codec = Codec::new(&[K1], &[B1], 3600);
        let plain = Codec::new(&[K1], &[], 3600);
        let valid = codec.encode("s", b"{\"v\":\"x\"}", 10_000).unwrap();
        let valid_plain = plain.encode("s", b"{}", 10_000).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const ALPHABET: &[u8] =
            b"0123456789.-_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=|%\\\"\x00\xff";
        for i in 0..200_000 {
            let input: Vec<u8> = if i % 2 == 0 {
                let len = (rand() % 200) as usize;
                (0..len).map(|_| ALPHABET[(rand() % ALPHABET.len() as u64) as usize]).collect()
            } else {
                let base = if i % 4 == 1 { &valid } else { &valid_plain };
                let mut bytes = base.clone().into_bytes();
                match rand() % 4 {
                    0 => {
                        let at = (rand() as usize) % bytes.len();
                        bytes[at] = ALPHABET[(rand() % ALPHABET.len() as u64) as usize];
                    }
                    1 => bytes.truncate((rand() as usize) % bytes.len()),
                    2 => bytes.insert(
                        (rand() as usize) % bytes.len(),
                        ALPHABET[(rand() % ALPHABET.len() as u64) as usize],
                    ),
                    _ => {
                        let at = (rand() as usize) % bytes.len();
                        bytes.remove(at);
                    }
                }
                bytes
            };
            let text = String::from_utf8_lossy(&input);
            for c in [&codec, &plain] {
                if let Some(decoded) = c.decode("s", &text, 10_000) {
                    assert!(
                        text == valid || text == valid_plain,
                        "forged cookie accepted: {text:?} -> {decoded:?}"
                    );
                }
            }
            assert!(!crate::contrib::csrf::matches(&text, &[7; 32]));
        }
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert!(parse_key("abc").unwrap_err().contains("64 hex"));
        assert!(parse_key(&"zz".repeat(32)).unwrap_err().contains("hex"));
    }
}
