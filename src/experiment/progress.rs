//! Long runs: a progress bar per variant (plain lines when stderr is not a
//! terminal), and Ctrl-C (or SIGTERM) asking the
//! runner to stop between runs, so the testbed is torn down and the runs so
//! far are kept.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// A bar of `n` runs labelled `what`: drawn on a terminal, plain lines
/// otherwise (see [`Progress`]).
pub fn bar(n: u64, what: &str) -> Progress {
    Progress::new(
        n,
        what,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )
}

/// Progress through `n` runs. On a terminal, an indicatif bar on stderr;
/// elsewhere (CI logs, `2> file`) indicatif would draw nothing, so one
/// plain line per step goes to stderr instead: every run up to
/// [`EVERY_RUN_UP_TO`] runs, else every tenth of the way, and the last.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: String,
    n: u64,
    done: Cell<u64>,
    t0: Instant,
}

/// Up to this many runs, a log line per run.
pub const EVERY_RUN_UP_TO: u64 = 20;

impl Progress {
    pub fn new(n: u64, what: &str, terminal: bool) -> Self {
        let bar = terminal.then(|| {
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
        });
        Self {
            bar,
            what: what.to_string(),
            n,
            done: Cell::new(0),
            t0: Instant::now(),
        }
    }

    /// `k` more runs done.
    pub fn inc(&self, k: u64) {
        let before = self.done.get();
        let now = before + k;
        self.done.set(now);
        match &self.bar {
            Some(b) => b.inc(k),
            None => {
                if logs_step(before, now, self.n) {
                    log(&line(&self.what, now, self.n, self.t0.elapsed()));
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }

    /// Stopped early: the bar stays as it is; the log says where.
    pub fn abandon(&self) {
        match &self.bar {
            Some(b) => b.abandon(),
            None => log(&format!(
                "{}: stopped after {}/{} runs",
                self.what,
                self.done.get(),
                self.n
            )),
        }
    }
}

/// Work of unknown length (`vlsp up` of a big topology): a spinner with
/// the elapsed time on a terminal, one line (`msg ...`) otherwise. Cleared
/// when dropped.
pub fn spinner(msg: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        log(&format!("{msg} ..."));
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("valid template"),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    Some(pb)
}

/// Whether going from `before` to `now` of `n` runs passes a step that
/// gets a log line.
pub fn logs_step(before: u64, now: u64, n: u64) -> bool {
    if now <= before {
        return false;
    }
    if n <= EVERY_RUN_UP_TO || now >= n {
        return true;
    }
    // Tenths: the line for the k-th tenth when `now` reaches ceil(k*n/10).
    let tenth = |x: u64| (x * 10) / n;
    tenth(now) > tenth(before)
}

/// One log line: `variant: 30/100 runs, 12.3 s, ETA 28.7 s`.
pub fn line(what: &str, done: u64, n: u64, elapsed: Duration) -> String {
    let s = elapsed.as_secs_f64();
    if done >= n || done == 0 {
        return format!("{what}: {done}/{n} runs, {s:.1} s");
    }
    let eta = s / done as f64 * (n - done) as f64;
    format!("{what}: {done}/{n} runs, {s:.1} s, ETA {eta:.1} s")
}

fn log(l: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{l}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(n: u64) -> Vec<u64> {
        (1..=n).filter(|&i| logs_step(i - 1, i, n)).collect()
    }

    #[test]
    fn short_runs_log_every_run_long_ones_every_tenth() {
        assert_eq!(logged(3), [1, 2, 3]);
        assert_eq!(logged(20).len(), 20);
        assert_eq!(logged(100), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        let l = logged(37);
        assert_eq!((l.len(), l.last()), (10, Some(&37)), "{l:?}");
        assert!(!logs_step(5, 5, 100));
    }

    #[test]
    fn lines_say_where_and_how_long() {
        let d = Duration::from_secs(10);
        assert_eq!(
            line("netlink", 25, 100, d),
            "netlink: 25/100 runs, 10.0 s, ETA 30.0 s"
        );
        assert_eq!(
            line("netlink", 100, 100, d),
            "netlink: 100/100 runs, 10.0 s"
        );
    }

    #[test]
    fn without_a_terminal_there_is_no_bar() {
        let p = Progress::new(3, "x", false);
        assert!(p.bar.is_none());
        p.inc(1);
        p.inc(2);
        assert_eq!(p.done.get(), 3);
        p.finish();
    }
}
