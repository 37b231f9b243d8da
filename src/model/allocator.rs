//! The process's memory allocator (issue 17): mimalloc by default, glibc's
//! malloc with `VLSP_ALLOCATOR=glibc`. On a chain of 1000 routers glibc's
//! allocator took ~10 % of the node threads' time (each router's frees land
//! in bins last touched a round ago), and with mimalloc setup was 6 % and
//! teardown 12.5 % faster, interleaved. Most of that comes with the
//! transparent huge pages mimalloc backs its memory with, and so does the
//! memory it keeps resident once thousands of nodes share a process (163
//! against 62 KiB per router on the 10 000-router chain, `results/scale/`),
//! which is what the switch is for. The `vlsp` binary and the timing
//! examples install [`Chosen`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// The environment variable that picks the allocator, as `getenv` takes it
/// inside the first allocation (where nothing may allocate).
const ENV_C: &CStr = c"VLSP_ALLOCATOR";
/// The same name, for everything else.
pub const ENV: &str = match ENV_C.to_str() {
    Ok(s) => s,
    Err(_) => panic!("the variable's name is ASCII"),
};
/// Its values.
pub const MIMALLOC: &str = "mimalloc";
pub const GLIBC: &str = "glibc";

const UNSET: u8 = 0;
const MI: u8 = 1;
const SYS: u8 = 2;

/// Decided at the process's first allocation and never changed, so every
/// block is freed by the allocator that made it.
static KIND: AtomicU8 = AtomicU8::new(UNSET);

/// What a value of [`ENV`] asks for (`None` for a value it does not
/// know; unset or empty is the default).
fn parse(v: Option<&[u8]>) -> Option<u8> {
    match v {
        None | Some(b"") => Some(MI),
        Some(v) if v == MIMALLOC.as_bytes() => Some(MI),
        Some(v) if v == GLIBC.as_bytes() => Some(SYS),
        Some(_) => None,
    }
}

fn kind() -> u8 {
    let k = KIND.load(Ordering::Relaxed);
    if k != UNSET {
        return k;
    }
    // Inside the first allocation: nothing here may allocate (`getenv`
    // does not). Whichever thread allocates first decides; one that raced
    // it takes the winner's choice, and every free follows an allocation
    // that had decided. Nothing in the program calls `setenv`, so nothing
    // writes the environment beside this `getenv`. An unknown value falls
    // back to the default here and is refused by [`check_env`].
    // SAFETY: the name is a NUL-terminated constant; the result is read at
    // once.
    let v = unsafe { libc::getenv(ENV_C.as_ptr()) };
    let v = (!v.is_null()).then(|| unsafe { CStr::from_ptr(v) }.to_bytes());
    let k = parse(v).unwrap_or(MI);
    match KIND.compare_exchange(UNSET, k, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => k,
        Err(first) => first,
    }
}

/// The allocator [`ENV`] picked, as a global allocator.
pub struct Chosen;

// SAFETY: each call goes to one of two sound allocators, the same one for
// the whole process (`KIND` never changes once set).
unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if kind() == SYS {
                System.alloc(l)
            } else {
                MiMalloc.alloc(l)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if kind() == SYS {
                System.alloc_zeroed(l)
            } else {
                MiMalloc.alloc_zeroed(l)
            }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above; `p` came from the same allocator.
        unsafe {
            if kind() == SYS {
                System.dealloc(p, l)
            } else {
                MiMalloc.dealloc(p, l)
            }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if kind() == SYS {
                System.realloc(p, l, new)
            } else {
                MiMalloc.realloc(p, l, new)
            }
        }
    }
}

/// The allocator this process uses: mimalloc only where [`Chosen`] is the
/// global allocator and picked it (a process without [`Chosen`], e.g. a
/// test binary, never sets the choice and runs on glibc's).
pub fn name() -> &'static str {
    if KIND.load(Ordering::Relaxed) == MI {
        MIMALLOC
    } else {
        GLIBC
    }
}

/// Refuses a value of [`ENV`] that names no allocator (the process would
/// otherwise run with the default without saying so).
pub fn check_env() -> Result<(), String> {
    let v = std::env::var_os(ENV);
    let bytes = v.as_ref().map(|v| v.as_encoded_bytes());
    match parse(bytes) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{ENV}={:?} names no allocator: use `{MIMALLOC}` (the default) or `{GLIBC}`",
            v.unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_an_allocator_or_are_refused() {
        assert_eq!(parse(None), Some(MI));
        assert_eq!(parse(Some(b"")), Some(MI));
        assert_eq!(parse(Some(b"mimalloc")), Some(MI));
        assert_eq!(parse(Some(b"glibc")), Some(SYS));
        assert_eq!(parse(Some(b"jemalloc")), None);
        assert_eq!(parse(Some(b"GLIBC")), None);
        assert_eq!(parse(Some(b"glibc ")), None);
    }
}
