//! Progress bars on stderr, hidden when stderr is not a terminal (CI logs, pipes).

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// Draws `gc_dataset::Progress` events with indicatif.
pub struct Bar {
    bar: Mutex<ProgressBar>,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            bar: Mutex::new(ProgressBar::hidden()),
        }
    }

    fn with(&self, f: impl FnOnce(&mut ProgressBar)) {
        if let Ok(mut bar) = self.bar.lock() {
            f(&mut bar);
        }
    }

    pub fn finish(&self) {
        self.with(|b| b.finish_and_clear());
    }
}

impl gc_dataset::Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        self.with(|b| {
            b.finish_and_clear();
            *b = match total {
                Some(n) => ProgressBar::new(n).with_style(
                    ProgressStyle::with_template(
                        "{msg:28} {bar:40} {pos}/{len} {per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{msg:28} {spinner} {pos} files {per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            }
            .with_message(name.to_string());
        });
    }

    fn inc(&self) {
        self.with(|b| b.inc(1));
    }
}
