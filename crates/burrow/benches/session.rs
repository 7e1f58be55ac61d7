//! Per-request cost of cookie sessions and CSRF: decoding the session cookie (HMAC check,
//! AES-GCM decryption, JSON) and verifying a CSRF token against its signed cookie.
//! Run: `cargo bench -p burrow --bench session`.

use std::hint::black_box;

use burrow::contrib::csrf;
use burrow::contrib::securecookie::{Codec, now};
use criterion::{Criterion, criterion_group, criterion_main};

fn session(c: &mut Criterion) {
    let payload = b"{\"_messages\":[{\"level\":\"success\",\"text\":\"Created a note.\"}],\
                    \"user_id\":42,\"theme\":\"dark\",\"last_seen\":\"/notes/17\"}";
    let signed = Codec::new(&[[1; 32]], &[], 604_800);
    let encrypted = Codec::new(&[[1; 32]], &[[2; 32]], 604_800);
    let t = now();
    let signed_cookie = signed.encode("_session", payload, t).unwrap();
    let encrypted_cookie = encrypted.encode("_session", payload, t).unwrap();

    let mut group = c.benchmark_group("session");
    group.bench_function("decode signed + JSON", |b| {
        b.iter(|| {
            let bytes = signed.decode("_session", black_box(&signed_cookie), t).unwrap();
            black_box(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
        })
    });
    group.bench_function("decode signed + encrypted + JSON", |b| {
        b.iter(|| {
            let bytes = encrypted.decode("_session", black_box(&encrypted_cookie), t).unwrap();
            black_box(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
        })
    });
    group.bench_function("encode signed + encrypted", |b| {
        b.iter(|| black_box(encrypted.encode("_session", black_box(payload), t).unwrap()))
    });
    group.bench_function("reject tampered cookie", |b| {
        let mut bad = encrypted_cookie.clone().into_bytes();
        bad[20] ^= 1;
        let bad = String::from_utf8(bad).unwrap();
        b.iter(|| black_box(encrypted.decode("_session", black_box(&bad), t)))
    });
    group.finish();

    // CSRF: the cookie carries the signed secret; the request carries a masked token.
    let csrf_codec = Codec::new(&[[3; 32]], &[], 365 * 24 * 3600);
    let secret = [9u8; 32];
    let cookie = csrf_codec.encode("_csrf", &secret, t).unwrap();
    let token = {
        use base64::Engine;
        let mask = [5u8; 32];
        let mut raw = mask.to_vec();
        raw.extend(secret.iter().zip(mask.iter()).map(|(s, m)| s ^ m));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    };
    c.bench_function("csrf verify (cookie decode + token check)", |b| {
        b.iter(|| {
            let secret: [u8; 32] =
                csrf_codec.decode("_csrf", black_box(&cookie), t).unwrap().try_into().unwrap();
            assert!(csrf::matches(black_box(&token), &secret));
        })
    });
}

criterion_group!(benches, session);
criterion_main!(benches);
