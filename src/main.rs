//! The `vlsp` binary: everything lives in [`vlsp::cli`].

use std::process::ExitCode;

/// mimalloc, not glibc's malloc: on a chain of 1000 routers glibc's
/// allocator was ~10 % of the node threads' time (each router's frees land
/// in bins last touched a round ago); interleaved, setup -6 % and teardown
/// -12.5 % with mimalloc (issue 17, README *Per hop at stop 34*).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Errors print their whole chain of causes first, one per line, so the
/// reason a run stopped is read before any backtrace (`RUST_BACKTRACE=1`).
fn main() -> ExitCode {
    let Err(e) = vlsp::cli::main() else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  because: {cause}");
    }
    let bt = e.backtrace();
    if bt.status() == std::backtrace::BacktraceStatus::Captured {
        eprintln!("\nbacktrace:\n{bt}");
    }
    ExitCode::FAILURE
}
