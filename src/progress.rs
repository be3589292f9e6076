//! Progress bars that appear only for work that takes over a second, and never with
//! `--quiet` or when stderr is not a terminal (indicatif's stderr target checks that).
//!
//! The bar shows position, rate and ETA. It draws to stderr, so stdout stays clean for
//! output that users pipe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const SHOW_AFTER: Duration = Duration::from_secs(1);

pub struct Progress {
    bar: ProgressBar,
    quiet: bool,
    shown: AtomicBool,
    started: Instant,
}

impl Progress {
    /// A bar for `len` units of work (0 if not known yet), labelled `what`.
    pub fn new(len: u64, what: &'static str, quiet: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what);
        Progress {
            bar,
            quiet,
            shown: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// A bar that never draws (library callers, tests).
    pub fn hidden() -> Progress {
        Progress::new(0, "", true)
    }

    pub fn set_length(&self, len: u64) {
        self.bar.set_length(len);
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if !self.quiet
            && !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() >= SHOW_AFTER
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    pub fn set_message(&self, msg: impl Into<std::borrow::Cow<'static, str>>) {
        self.bar.set_message(msg);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
