//! [`Allocator`]: mimalloc as the global allocator, through the C library's own entry
//! points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The memory allocator burrow's binaries use ([mimalloc](https://github.com/microsoft/mimalloc),
/// built from C with the crate), for the app's `main.rs`:
///
/// ```no_run
/// #[global_allocator]
/// static ALLOCATOR: burrow::Allocator = burrow::Allocator;
///
/// fn main() -> std::process::ExitCode {
///     burrow::Server::new("hello", "0.1.0").run()
/// }
/// ```
///
/// A server allocates and frees many small blocks per request on every worker thread, and
/// a block is often freed on another thread than the one that allocated it (tokio moves a
/// connection's task between threads). glibc's allocator then takes locks, and under load
/// its threads wait on each other; mimalloc's per-thread pages do not. Measured under wrk
/// on two cores (bench/README.md, "Steps 17–18: the allocator"): a page with a query and
/// a template 46 → 36 µs of CPU per request, a form POST 29 → 25 µs, for a few MiB more
/// at peak.
/// Without these two lines the system's allocator is used; without burrow's default
/// `mimalloc` feature this type does not exist (and no C code is built for it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Allocator;

/// Every mimalloc block of at least this many bytes is aligned to this (`MI_MAX_ALIGN_SIZE`
/// on 64-bit targets).
const MAX_ALIGN: usize = 16;

/// Whether `mi_malloc` alone gives `layout` its alignment: mimalloc's own test
/// (`mi_malloc_is_naturally_aligned` in alloc-aligned.c), by which its aligned entry
/// points fall back to `mi_malloc`. Most of a server's blocks are such, and the aligned
/// path costs each of them a call chain and a check of the free block's address (about 20
/// instructions; a plaintext request allocates 29 blocks: bench/README.md, step 26).
#[inline]
fn natural(align: usize, size: usize) -> bool {
    align <= MAX_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it; `mi_malloc` is used only
// where mimalloc guarantees the layout's alignment (`natural`), the aligned entry points
// everywhere else.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C calls; a null return is the allocation failure GlobalAlloc expects.
        unsafe {
            if natural(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if natural(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block this allocator returned; the new block keeps the
        // old layout's alignment, by the same test as `alloc`.
        unsafe {
            if natural(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

// Entry points the crate's bindings leave to its `extended` feature.
unsafe extern "C" {
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mi_good_size(size: usize) -> usize;
    fn mi_collect(force: bool);
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v2's `mi_option_t` (mimalloc.h): how long memory
/// freed in a thread's segments stays committed before it goes back to the OS.
const PURGE_DELAY: std::ffi::c_int = 15;

/// Milliseconds after which freed memory goes back to the OS while the server serves, where
/// mimalloc's default is 10. A server frees pages at a high rate (hyper's 8 KiB read buffer
/// anew for every request), and what was freed in the last `PURGE_DELAY` ms stays resident
/// while new pages are taken: under plaintext the default held 12.2 MiB at peak, 1 ms 11.2
/// (bench/README.md, step 38), for ~6 `madvise` calls and ~50 page faults more per
/// thousand requests.
const SERVING_PURGE_DELAY_MS: std::ffi::c_long = 1;

/// mimalloc's settings for a server process, made before it boots: freed memory goes back
/// at once. The boot frees much (the command line's parser, configuration files, template
/// compilation), and a span freed but still committed keeps all it held resident when a
/// page of another size takes it over, however little of it that page uses: bench-app's
/// main thread kept 330 KiB more so with a delay than without.
/// A setting the operator gave mimalloc in its environment (`MIMALLOC_PURGE_DELAY`) is
/// kept, here and in [`serving`].
pub(crate) fn configure() {
    set_purge_delay(0);
}

/// The server is booted and serves: freed memory goes back after [`SERVING_PURGE_DELAY_MS`],
/// and what this thread freed goes back now (a purge is otherwise only decided on a later
/// free in the same thread, and this thread now waits for the end).
pub(crate) fn serving() {
    set_purge_delay(SERVING_PURGE_DELAY_MS);
    release_freed();
}

/// Hands what the calling thread freed back to the OS now.
pub(crate) fn release_freed() {
    // SAFETY: a plain C call on the calling thread's heap.
    unsafe { mi_collect(true) }
}

fn set_purge_delay(ms: std::ffi::c_long) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a documented option with a value in its range; mimalloc reads the option
        // on every purge decision, so a change takes effect at once.
        unsafe { mi_option_set(PURGE_DELAY, ms) };
    }
}

/// SQLite's allocations through mimalloc too (`db::sqlite` hands these to
/// `SQLITE_CONFIG_MALLOC`): otherwise they go to glibc's allocator, whose per-thread
/// arenas each keep their own free memory (about 340 KiB at idle for the main thread and
/// one reader thread) and whose calls cost more than mimalloc's.
pub(crate) fn sqlite_methods() -> rusqlite::ffi::sqlite3_mem_methods {
    use std::ffi::c_int;
    // SAFETY (all): SQLite passes sizes > 0 and blocks these functions returned.
    unsafe extern "C" fn malloc(size: c_int) -> *mut c_void {
        unsafe { mi::mi_malloc(size as usize) }
    }
    unsafe extern "C" fn free(block: *mut c_void) {
        unsafe { mi::mi_free(block) }
    }
    unsafe extern "C" fn realloc(block: *mut c_void, size: c_int) -> *mut c_void {
        unsafe { mi::mi_realloc(block, size as usize) }
    }
    unsafe extern "C" fn size(block: *mut c_void) -> c_int {
        unsafe { mi_usable_size(block) }.min(c_int::MAX as usize) as c_int
    }
    unsafe extern "C" fn roundup(size: c_int) -> c_int {
        unsafe { mi_good_size(size as usize) }.min(c_int::MAX as usize) as c_int
    }
    unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        rusqlite::ffi::SQLITE_OK
    }
    unsafe extern "C" fn shutdown(_: *mut c_void) {}
    rusqlite::ffi::sqlite3_mem_methods {
        xMalloc: Some(malloc),
        xFree: Some(free),
        xRealloc: Some(realloc),
        xSize: Some(size),
        xRoundup: Some(roundup),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    /// Whether each 4 KiB page of `block` is resident (`mincore`).
    fn resident_pages(block: *mut c_void, len: usize) -> Vec<bool> {
        let mut present = vec![0u8; len / 4096];
        // SAFETY: `block` is page-aligned and `len` bytes of it are mapped; `present` has
        // one byte per page.
        let rc = unsafe { nix::libc::mincore(block, len, present.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        present.iter().map(|p| p & 1 == 1).collect()
    }

    /// Frees 2 MiB written through on a thread of its own (nothing else allocates in its
    /// heap meanwhile), then tells whether the last block freed is still resident, after
    /// `release_freed` when `release`.
    fn freed_memory_resident(release: bool) -> bool {
        std::thread::spawn(move || {
            // A block that stays: the thread's memory is not all free, as in a server.
            // SAFETY (all): plain C calls; each block is written within its size, then
            // freed once.
            let kept = unsafe { mi::mi_malloc(100) };
            // 64 KiB blocks (one page of their own each).
            let size = 64 * 1024;
            let blocks: Vec<*mut c_void> = (0..32)
                .map(|_| unsafe {
                    let block = mi::mi_malloc_aligned(size, 4096);
                    block.cast::<u8>().write_bytes(0xa5, size);
                    block
                })
                .collect();
            // The last block freed: a delayed purge is decided on a later free, and none
            // follows.
            let last = blocks[blocks.len() - 1];
            assert!(resident_pages(last, size).iter().all(|r| *r));
            for block in blocks {
                unsafe { mi::mi_free(block) };
            }
            if release {
                release_freed();
            }
            let resident = resident_pages(last, size);
            unsafe { mi::mi_free(kept) };
            assert!(resident.iter().all(|r| *r) || resident.iter().all(|r| !*r));
            resident[0]
        })
        .join()
        .unwrap()
    }

    /// What a thread freed stays resident for the purge delay unless `release_freed`
    /// returns it to the OS at once; the server sets the delay unless the environment does.
    #[test]
    fn freed_memory_goes_back_to_the_os() {
        // SAFETY: an option index mimalloc knows; no other test depends on it.
        let set_delay = |ms| unsafe { mi_option_set(PURGE_DELAY, ms) };
        set_delay(10_000);
        assert!(freed_memory_resident(false), "freed memory was purged at once");
        assert!(!freed_memory_resident(true), "release_freed left freed memory resident");
        // `PURGE_DELAY` is the delay's index: without one, freed memory goes at once.
        set_delay(0);
        assert!(!freed_memory_resident(false), "no delay, yet freed memory stayed resident");

        // The delay: none while the server boots, `SERVING_PURGE_DELAY_MS` once it serves;
        // the operator's `MIMALLOC_PURGE_DELAY` instead of either. (In the same test as the
        // above, which sets the delay for itself.)
        // SAFETY: an option index mimalloc knows.
        let delay = || unsafe { mi_option_get(PURGE_DELAY) };
        let operators = std::env::var("MIMALLOC_PURGE_DELAY").ok().map(|v| v.parse().unwrap());
        configure();
        assert_eq!(delay(), operators.unwrap_or(0));
        serving();
        assert_eq!(delay(), operators.unwrap_or(SERVING_PURGE_DELAY_MS));
    }

    /// Every layout a program asks for comes back aligned and usable, on both paths.
    #[test]
    fn blocks_have_their_layouts_alignment() {
        let mut blocks = Vec::new();
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 12, 16, 24, 40, 100, 1000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: layouts of non-zero size; every block is freed below.
                unsafe {
                    let block = Allocator.alloc(layout);
                    assert!(!block.is_null());
                    assert_eq!(block as usize % align, 0, "{layout:?}");
                    block.write_bytes(0xa5, size);
                    let zeroed = Allocator.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "{layout:?} zeroed");
                    assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|b| *b == 0));
                    let grown = Allocator.realloc(block, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "{layout:?} grown");
                    assert!(std::slice::from_raw_parts(grown, size).iter().all(|b| *b == 0xa5));
                    blocks.push((grown, Layout::from_size_align(size * 3, align).unwrap()));
                    blocks.push((zeroed, layout));
                }
            }
        }
        for (block, layout) in blocks {
            // SAFETY: each block came from `Allocator` with this layout.
            unsafe { Allocator.dealloc(block, layout) };
        }
    }
}
