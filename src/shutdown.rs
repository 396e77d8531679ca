//! A one-shot shutdown signal shared by every thread of a service, set by `SIGINT`/`SIGTERM`
//! (see [`Shutdown::on_signals`]) or by a test.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Cloneable; all clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        let (flag, cvar) = &*self.inner;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until triggered.
    pub fn wait(&self) {
        let (flag, cvar) = &*self.inner;
        let mut set = flag.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            set = cvar.wait(set).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks until triggered or `timeout` passed; returns whether it was triggered.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (flag, cvar) = &*self.inner;
        let mut set = flag.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            set = cvar
                .wait_timeout(set, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Triggers this signal on the first `SIGINT` or `SIGTERM`.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let shutdown = self.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    log::info!("received signal {signal}, shutting down");
                    shutdown.trigger();
                }
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_once_triggered_from_another_thread() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.wait_timeout(Duration::from_millis(10)));
        let other = shutdown.clone();
        let t = std::thread::spawn(move || other.trigger());
        shutdown.wait();
        assert!(shutdown.is_triggered());
        assert!(shutdown.wait_timeout(Duration::ZERO));
        t.join().unwrap();
    }
}
