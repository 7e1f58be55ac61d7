//! Randomness for secrets, nonces and unguessable names: the operating system's generator
//! (through ring), the one source the framework uses.

use ring::rand::{SecureRandom, SystemRandom};

/// Fills `bytes` from the operating system's random generator.
///
/// Panics when the generator fails: that happens only on a broken system, where no
/// secret, nonce or file name could be trusted anyway.
pub(crate) fn fill(bytes: &mut [u8]) {
    SystemRandom::new().fill(bytes).expect("system random");
}

/// `len` random bytes as `2 * len` lowercase hex digits.
pub(crate) fn hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_has_two_digits_per_byte_and_differs_each_time() {
        let (a, b) = (super::hex(8), super::hex(8));
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
    }
}
