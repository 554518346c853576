//! The global allocator: mimalloc, entered at its plain `mi_malloc` whenever the alignment asked
//! for is one every mimalloc block already has.
//!
//! The `mimalloc` crate's `GlobalAlloc` calls `mi_malloc_aligned` for every allocation, which
//! goes through two more calls and an alignment check before the same small-block fast path
//! (callgrind of a cold `run --once`: 223,002 allocations, 13.3 M instructions, ~43 a fast
//! allocation). Nearly all of Rust's allocations ask for an alignment of 8 or less (strings,
//! vectors of pointers, boxed structs of pointers), and mimalloc's size classes are whole
//! words (`mi_bin`: block sizes are multiples of the word, in word-aligned pages), so every
//! block it hands out is word-aligned: for those, `mi_malloc` answers the same request
//! directly, as std's `System` allocator calls `malloc` when the alignment is one `malloc`
//! guarantees. Larger alignments keep mimalloc's aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every block mimalloc hands out, of any size: a word.
const BLOCK_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc (its version 2: see `main`'s allocator), used as `#[global_allocator]`.
pub struct Mimalloc;

// SAFETY: each method forwards to the mimalloc function of the same contract. A pointer from
// `mi_malloc`, `mi_zalloc`, `mi_realloc` or their aligned forms may be given to any of
// `mi_free`, `mi_realloc` and `mi_realloc_aligned`, and every block is word-aligned
// (`BLOCK_ALIGN`), so the plain forms are only used where that alignment meets the layout's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the size is the layout's; an alignment beyond a word is asked for.
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract), so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its
        // alignment (a word's, or the one asked for).
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    /// Allocates `layout` from [`Mimalloc`], checks the block is aligned and usable, grows it,
    /// checks again, and frees it.
    fn round_trip(layout: Layout, zeroed: bool) {
        let a = Mimalloc;
        // SAFETY: every layout here has a non-zero size; each pointer is checked for null,
        // written within its size and freed once with the layout it was allocated with.
        unsafe {
            let p = if zeroed {
                a.alloc_zeroed(layout)
            } else {
                a.alloc(layout)
            };
            assert!(!p.is_null(), "{layout:?}");
            assert_eq!(p.addr() % layout.align(), 0, "{layout:?}");
            if zeroed {
                assert!(
                    std::slice::from_raw_parts(p, layout.size())
                        .iter()
                        .all(|&b| b == 0),
                    "{layout:?}"
                );
            }
            p.write_bytes(0xa5, layout.size());
            let grown = layout.size() * 3 + 1;
            let q = a.realloc(p, layout, grown);
            assert!(!q.is_null(), "{layout:?}");
            assert_eq!(q.addr() % layout.align(), 0, "{layout:?} grown to {grown}");
            assert!(
                std::slice::from_raw_parts(q, layout.size())
                    .iter()
                    .all(|&b| b == 0xa5),
                "{layout:?}: the contents survive the move"
            );
            a.dealloc(q, Layout::from_size_align_unchecked(grown, layout.align()));
        }
    }

    /// Every size class's edge, in every alignment up to a page: the plain entry points for
    /// those a word meets, the aligned ones beyond. Several of each at once, so that blocks
    /// past a page's first are checked too.
    #[test]
    fn every_block_meets_its_layouts_alignment() {
        let sizes = (1..=80).chain([127, 128, 129, 1000, 4095, 4096, 70_000, 1 << 22]);
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).expect("a layout");
                for zeroed in [false, true] {
                    for _ in 0..3 {
                        round_trip(layout, zeroed);
                    }
                }
            }
        }
    }

    /// Blocks of a word-sized class held together: were a class's blocks not all
    /// word-aligned, one of these would show it.
    #[test]
    fn many_live_blocks_of_one_size_are_all_word_aligned() {
        let a = Mimalloc;
        for size in [1, 3, 8, 12, 24, 40, 56] {
            let layout = Layout::from_size_align(size, BLOCK_ALIGN).expect("a layout");
            // SAFETY: non-zero sizes; each block freed once with its layout.
            unsafe {
                let blocks: Vec<*mut u8> = (0..1000).map(|_| a.alloc(layout)).collect();
                for &p in &blocks {
                    assert!(!p.is_null());
                    assert_eq!(p.addr() % BLOCK_ALIGN, 0, "size {size}");
                }
                for p in blocks {
                    a.dealloc(p, layout);
                }
            }
        }
    }
}
