//! "Never unbounded allocation", checked: the test binary's allocator counts, per thread, the
//! bytes live while a fuzz input is parsed and their peak. A parser that sizes a buffer from
//! a number in its input (a count, a length) shows up as a peak far above the input's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting for the thread that asked ([`bounded`]).
pub(crate) struct Counting;

#[global_allocator]
static COUNTING: Counting = Counting;

thread_local! {
    // Const-initialised and without a destructor: usable from inside the allocator, even while
    // the thread exits.
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// A single request this large, while an input is parsed, fails the allocation at once (the
/// process aborts naming the size) instead of taking the machine's memory.
const REFUSED: usize = 1 << 30;

fn on_alloc(size: usize) -> bool {
    TRACKING
        .try_with(|t| {
            if !t.get() {
                return true;
            }
            if size >= REFUSED {
                return false;
            }
            let live = LIVE.with(|l| {
                let v = l.get() + size as isize;
                l.set(v);
                v
            });
            PEAK.with(|p| p.set(p.get().max(live)));
            true
        })
        .unwrap_or(true)
}

fn on_dealloc(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            LIVE.with(|l| l.set(l.get() - size as isize));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping touches only
// thread-local cells and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !on_alloc(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !on_alloc(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_dealloc(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !on_alloc(new_size) {
            return std::ptr::null_mut();
        }
        on_dealloc(layout.size());
        System.realloc(ptr, layout, new_size)
    }
}

/// The most a parser may hold at once for `input_len` bytes of input: a fixed allowance plus
/// a generous multiple of the input (a parsed JSON value or scenario is several times its
/// text; a count in the text must not multiply it).
pub(crate) fn limit(input_len: usize) -> usize {
    (8 << 20) + 256 * input_len
}

/// Runs `parse` on `input` and fails if it held more than [`limit`] bytes at its peak.
pub(crate) fn bounded<R>(input: &str, parse: impl FnOnce() -> R) -> R {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            TRACKING.with(|t| t.set(false));
        }
    }
    let stop = Stop;
    let out = parse();
    drop(stop);
    let peak = PEAK.with(Cell::get).max(0) as usize;
    assert!(
        peak <= limit(input.len()),
        "parsing {} bytes held {peak} bytes at once (limit {}): {:?}",
        input.len(),
        limit(input.len()),
        crate::text::excerpt(input, 200)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_sized_by_the_input_is_caught() {
        let caught = std::panic::catch_unwind(|| {
            bounded("9999999", || vec![0u8; 64 << 20].len());
        });
        assert!(caught.is_err(), "64 MiB for 7 bytes of input must fail");
        assert_eq!(bounded("x", || vec![0u8; 1024].len()), 1024);
    }
}
