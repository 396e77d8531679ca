//! One-shot signals shared between threads: [`Latch`], set once and waited for, and on it the
//! service's [`Shutdown`], set by `SIGINT`/`SIGTERM` (see [`Shutdown::on_signals`]) or by a
//! test. (The HTTP watchdog's `Alarm` is a latch too, holding why the server failed.)

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Set once, with a value (later values are ignored); cloneable, all clones share it, and any
/// thread can wait for it.
#[derive(Debug, Clone)]
pub struct Latch<T> {
    inner: Arc<(Mutex<Option<T>>, Condvar)>,
}

impl<T> Default for Latch<T> {
    fn default() -> Self {
        Latch {
            inner: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }
}

impl<T: Clone> Latch<T> {
    /// Sets the latch, unless it is set already, and wakes every waiter.
    pub fn set(&self, value: T) {
        let (slot, cvar) = &*self.inner;
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(value);
        }
        cvar.notify_all();
    }

    /// The value it was set with, if it was.
    pub fn get(&self) -> Option<T> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Blocks until set; returns the value.
    pub fn wait(&self) -> T {
        let (slot, cvar) = &*self.inner;
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(value) = &*slot {
                return value.clone();
            }
            slot = cvar.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks until set or `timeout` passed; returns the value if set.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let (slot, cvar) = &*self.inner;
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        while slot.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            slot = cvar
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        slot.clone()
    }
}

/// The service's stop signal. Cloneable; all clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Latch<()>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        self.0.set(());
    }

    pub fn is_triggered(&self) -> bool {
        self.0.get().is_some()
    }

    /// Blocks until triggered.
    pub fn wait(&self) {
        self.0.wait();
    }

    /// Blocks until triggered or `timeout` passed; returns whether it was triggered.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.0.wait_timeout(timeout).is_some()
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
