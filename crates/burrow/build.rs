//! Puts the code a burrow server runs on every request next to each other in the app's
//! release binary (bench/README.md, step 34).
//!
//! The kernel maps a binary's code 64 KiB at a time around each page a process touches,
//! so code that runs scattered among code that never does makes the server's resident
//! memory twice the code it runs (bench-app: 9.1 MiB of its code mapped after the start,
//! 4.5 with this order). `hot-code.ld` (written by `bench/hot-ld.sh` from profiled runs
//! of bench-app and the notes example) names those functions with their hashes globbed,
//! so it matches any build of the same code; the linker gathers them into a `.text.hot`
//! section before `.text`. A function it does not name stays where it was: an
//! out-of-date list costs memory, never correctness.
//!
//! A library cannot pass a linker flag to the binaries that use it, but it can name a
//! native library, and lld reads an input file that is no object or archive as a linker
//! script. GNU ld does not (an archive's name must hold an archive), so the script is
//! only offered where rustc links with its own lld: release builds for
//! x86_64-unknown-linux-gnu (rustc's default there since 1.90) with no linker chosen
//! otherwise. `BURROW_CODE_ORDER=off` leaves it out of any build.

use std::env;
use std::path::PathBuf;

const SCRIPT: &str = "hot-code.ld";

fn main() {
    println!("cargo:rerun-if-changed={SCRIPT}");
    println!("cargo:rerun-if-env-changed=BURROW_CODE_ORDER");
    if !linked_by_rust_lld() || env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    match env::var("BURROW_CODE_ORDER").as_deref() {
        Ok("off") => return,
        Ok("on") | Err(_) => {}
        Ok(other) => panic!("BURROW_CODE_ORDER={other}: expected `on` or `off`"),
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Named for the linker that reads it: another one's "file format not recognized"
    // then says why.
    let library = "burrow_hot_code_for_lld";
    std::fs::copy(SCRIPT, out.join(format!("lib{library}.a"))).expect("copy hot-code.ld");
    println!("cargo:rustc-link-search=native={}", out.display());
    // `-bundle`: the final link reads the file, the rlib does not take it in.
    println!("cargo:rustc-link-lib=static:-bundle={library}");
}

/// Whether the binaries of this build link with rustc's own lld: its default for this
/// target, unless a linker or linker features are set.
fn linked_by_rust_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("RUSTC_LINKER").is_some()
    {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    !flags.split('\x1f').any(|flag| {
        // "linker" also matches linker-flavor and linker-features.
        ["linker", "link-self-contained", "fuse-ld"].iter().any(|setting| flag.contains(setting))
    })
}
