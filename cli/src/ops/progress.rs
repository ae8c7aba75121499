//! Progress on standard error: a bar with rate and ETA on a terminal, plain lines otherwise
//! (logs, CI), at most one every two seconds plus the last.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often plain progress lines are written.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Progress of one operation over items (events, streams, messages).
#[derive(Debug)]
pub struct Progress {
    label: String,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts showing progress of `label`, counting `unit`s, out of `total` if known.
    pub fn new(label: &str, unit: &'static str, total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            let template = if total.is_some() {
                "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}"
            } else {
                "{msg} {spinner} {pos} {per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("{label} ({unit})"));
            bar
        });
        Self {
            label: label.to_owned(),
            unit,
            total,
            done: 0,
            started: Instant::now(),
            last_line: Instant::now(),
            bar,
        }
    }

    /// Sets the total once it is known.
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// Counts `n` more done.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                self.line();
            }
            None => {}
        }
    }

    /// Items per second so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    fn line(&self) {
        let rate = self.rate();
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        let eta = self
            .total
            .filter(|_| rate > 0.0)
            .map(|t| format!(", ETA {:.0} s", t.saturating_sub(self.done) as f64 / rate))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "{}: {}{of} {} ({rate:.0}/s{eta})",
            self.label,
            self.done,
            self.unit
        );
    }

    /// Ends the display; the count and the time taken.
    pub fn finish(self) -> (u64, Duration) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => self.line(),
        }
        (self.done, self.started.elapsed())
    }
}
