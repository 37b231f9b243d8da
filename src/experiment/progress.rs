//! Long runs: a progress bar per variant, and Ctrl-C (or SIGTERM) asking the
//! runner to stop between runs, so the testbed is torn down and the runs so
//! far are kept.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM set the stop flag instead of killing us.
pub fn catch_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let sa = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let _ = sigaction(Signal::SIGINT, &sa);
        let _ = sigaction(Signal::SIGTERM, &sa);
    }
}

/// Whether a signal asked the runner to stop.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// A bar of `n` runs labelled `what`.
pub fn bar(n: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>14} [{bar:40}] {pos}/{len} runs, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}
