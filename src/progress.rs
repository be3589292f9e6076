//! Progress that appears only for work that takes over a second, and never with `--quiet`.
//!
//! On a terminal it is a bar with position, rate and ETA. Where stderr is not a terminal
//! (Slurm, Kubernetes, `nohup`, a log file) it is a plain line every 10% of the work or
//! every 60 seconds, whichever comes first. Both go to stderr, so stdout stays clean for
//! output that users pipe.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const SHOW_AFTER: Duration = Duration::from_secs(1);
/// Plain progress lines: at most this far apart in time.
const LINE_EVERY: Duration = Duration::from_secs(60);

pub struct Progress {
    bar: ProgressBar,
    what: &'static str,
    quiet: bool,
    /// Plain lines instead of a bar: stderr is not a terminal.
    plain: bool,
    shown: AtomicBool,
    started: Instant,
    /// Plain lines: the last tenth reported and when the last line was written.
    last_line: Mutex<(u64, Instant)>,
}

/// A rate as a person reads it: `1234/s`, `18.2/s`, `0.53/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "-".to_string()
    } else if per_sec >= 100.0 {
        format!("{per_sec:.0}/s")
    } else if per_sec >= 10.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.2}/s")
    }
}

/// `1h02m`, `3m05s`, `42s`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Progress {
    /// A bar for `len` units of work (0 if not known yet), labelled `what`.
    pub fn new(len: u64, what: &'static str, quiet: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} {rate} eta {eta} {msg}",
        ) {
            let style = style.with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate(s.per_sec()));
                },
            );
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what);
        let started = Instant::now();
        Progress {
            bar,
            what,
            quiet,
            plain: !std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
            started,
            last_line: Mutex::new((0, started)),
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
        if self.quiet {
            return;
        }
        if self.plain {
            self.plain_line();
        } else if !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() >= SHOW_AFTER
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Where stderr is a log: a line when the work crosses a tenth, or a minute after the
    /// last line; nothing in the first second.
    fn plain_line(&self) {
        let elapsed = self.started.elapsed();
        if elapsed < SHOW_AFTER {
            return;
        }
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let tenth = (pos * 10).checked_div(len).unwrap_or(0);
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if tenth <= last.0 && last.1.elapsed() < LINE_EVERY {
            return;
        }
        *last = (tenth.max(last.0), Instant::now());
        let per_sec = pos as f64 / elapsed.as_secs_f64();
        let mut line = format!("{}: {pos}/{len}", self.what.trim());
        if let Some(pct) = (pos * 100).checked_div(len) {
            line.push_str(&format!(" ({pct}%)"));
        }
        line.push_str(&format!(", {}", rate(per_sec)));
        if len > pos && per_sec > 0.0 {
            let eta = Duration::from_secs_f64((len - pos) as f64 / per_sec);
            line.push_str(&format!(", eta {}", duration(eta)));
        }
        eprintln!("{line}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_read_as_people_write_them() {
        assert_eq!(rate(18.1789), "18.2/s");
        assert_eq!(rate(1234.4), "1234/s");
        assert_eq!(rate(0.5312), "0.53/s");
        assert_eq!(rate(0.0), "-");
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
    }
}
