//! Randomness for secrets, nonces and unguessable names: the operating system's generator
//! (through ring) for everything that is kept, and a per-thread generator seeded from it
//! for the bytes drawn on every request ([`fill_per_request`]).

use ring::rand::{SecureRandom, SystemRandom};

/// Fills `bytes` from the operating system's random generator.
///
/// Panics when the generator fails: that happens only on a broken system, where no
/// secret, nonce or file name could be trusted anyway.
pub(crate) fn fill(bytes: &mut [u8]) {
    SystemRandom::new().fill(bytes).expect("system random");
}

/// Fills `bytes` from this thread's generator: `rand`'s `ThreadRng`, ChaCha12 seeded from
/// the operating system's generator and seeded again after every 64 KiB it gives. For bytes
/// that each request draws afresh, that must be unpredictable and are never kept: a CSRF
/// token's mask. Drawn from the system, each was a `getrandom(2)`, 0.4 µs of a page's 41
/// (bench/README.md, step 60); here most draws are a copy from the generator's buffer.
/// Secrets and keys come from [`fill`].
///
/// Panics when the system's generator fails to seed it (see [`fill`]).
pub(crate) fn fill_per_request(bytes: &mut [u8]) {
    rand::Rng::fill_bytes(&mut rand::rng(), bytes);
}

/// `len` random bytes as `2 * len` lowercase hex digits.
pub(crate) fn hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    /// Each draw is new, and each thread's generator has its own seed: a generator seeded
    /// the same way on every thread (or not at all) would give two threads the same bytes.
    #[test]
    fn per_request_bytes_differ_between_draws_and_between_threads() {
        let draw = || {
            let mut bytes = [0u8; 32];
            super::fill_per_request(&mut bytes);
            bytes
        };
        let (first, second) = (draw(), draw());
        assert_ne!(first, [0; 32]);
        assert_ne!(first, second);
        let others: Vec<[u8; 32]> =
            (0..4).map(|_| std::thread::spawn(draw).join().unwrap()).collect();
        for (i, other) in others.iter().enumerate() {
            assert!(![first, second].contains(other), "thread {i} drew this thread's bytes");
            assert!(!others[..i].contains(other), "threads {i} and another drew the same");
        }
    }

    #[test]
    fn hex_has_two_digits_per_byte_and_differs_each_time() {
        let (a, b) = (super::hex(8), super::hex(8));
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
    }
}
