//! The `vlsp` binary: everything lives in [`vlsp::cli`].

use std::process::ExitCode;

/// mimalloc unless `VLSP_ALLOCATOR=glibc` (`vlsp::model::allocator`).
#[global_allocator]
static GLOBAL: vlsp::model::allocator::Chosen = vlsp::model::allocator::Chosen;

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
