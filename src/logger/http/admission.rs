//! What the server lets run and hold at once: handler permits (at most `HTTP_THREADS` handlers
//! run together, however many connections are open) and the bytes of large answers in flight
//! (answers built in memory and waiting for slow or absent readers).
//!
//! A large answer takes its share of the budget before it is built when the handler can tell
//! how large it will be at least ([`crate::logger::http::Request::reserve_answer`]), so that a
//! crowd asking for big pages is refused before any of those pages is copied and serialised;
//! the server settles the share at the answer's real size once it is built.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Answers up to this size are always written; larger ones take their size from the budget
/// while they are written.
pub(super) const SMALL_ANSWER_BYTES: usize = 64 * 1024;

/// Bytes of large answers being written at once, at most (one answer alone always may): past
/// it, a large answer is refused with a `503`, so that many clients slow to read large
/// answers cannot make the process hold them all.
pub(super) const ANSWER_BYTES_IN_FLIGHT: usize = 128 * 1024 * 1024;

/// Why a large answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswersBusy;

impl std::fmt::Display for AnswersBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "too many large answers are being sent at once; retry later, or ask for a smaller \
             page (limit)",
        )
    }
}

impl std::error::Error for AnswersBusy {}

/// What every connection's thread asks before running a handler, and the budget of large
/// answers.
#[derive(Debug)]
pub(crate) struct Admission {
    handlers: Permits,
    /// Handlers building a large answer leave `handlers` for this smaller lane, so that a
    /// crowd asking for big pages never holds every permit while small requests wait.
    large: Permits,
    running: RunningCount,
    pub(super) answers: AnswerBudget,
}

impl Admission {
    /// `threads` handlers at once, half as many of them (at least one) building large answers.
    pub(super) fn new(threads: usize) -> Admission {
        let threads = threads.max(1);
        Admission {
            handlers: Permits::new(threads),
            large: Permits::new((threads / 2).max(1)),
            running: RunningCount::default(),
            answers: AnswerBudget::new(ANSWER_BYTES_IN_FLIGHT),
        }
    }

    /// Waits for a handler permit; the request counts as running until the guard is dropped.
    pub(super) fn handler(&self) -> (Running<'_>, Permit<'_>) {
        let running = self.running.enter();
        (running, self.handlers.acquire())
    }

    /// Gives `permit` back and waits for one of the large-answer lane instead.
    pub(super) fn move_to_large_lane<'a>(&'a self, permit: Permit<'a>) -> Permit<'a> {
        drop(permit);
        self.large.acquire()
    }

    /// Waits until no handler runs.
    pub(super) fn wait_idle(&self) {
        self.running.wait_idle();
    }
}

/// At most `n` holders at once.
#[derive(Debug)]
struct Permits {
    free: Mutex<usize>,
    /// One waiter is woken per permit freed: with thousands of connections waiting, waking
    /// them all on every release would cost more than the handlers.
    freed: Condvar,
}

/// One permit; dropping it frees it.
#[derive(Debug)]
pub(super) struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(n: usize) -> Permits {
        Permits {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

#[cfg(test)]
impl Permits {
    fn free(&self) -> usize {
        *self.free.lock().unwrap()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// How many requests are between asking for a handler permit and their end, whichever
/// permit they hold: what a graceful stop waits for.
#[derive(Debug, Default)]
struct RunningCount {
    now: Mutex<usize>,
    none: Condvar,
}

/// One request counted in [`RunningCount`] until dropped.
#[derive(Debug)]
pub(super) struct Running<'a>(&'a RunningCount);

impl RunningCount {
    fn enter(&self) -> Running<'_> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Running(self)
    }

    fn wait_idle(&self) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        while *now > 0 {
            now = self.none.wait(now).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut now = self.0.now.lock().unwrap_or_else(|e| e.into_inner());
        *now -= 1;
        if *now == 0 {
            self.0.none.notify_all();
        }
    }
}

/// The bytes of large answers being built or written, bounded.
#[derive(Debug, Clone)]
pub(crate) struct AnswerBudget {
    in_flight: Arc<AtomicUsize>,
    limit: usize,
}

/// `bytes` of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct AnswerPermit {
    in_flight: Arc<AtomicUsize>,
    limit: usize,
    bytes: usize,
}

impl AnswerBudget {
    pub(super) fn new(limit: usize) -> AnswerBudget {
        AnswerBudget {
            in_flight: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// `bytes` of the budget, if they fit (or nothing else is in flight).
    pub(super) fn take(&self, bytes: usize) -> Result<AnswerPermit, AnswersBusy> {
        let mut permit = AnswerPermit {
            in_flight: self.in_flight.clone(),
            limit: self.limit,
            bytes: 0,
        };
        permit.resize(bytes)?;
        Ok(permit)
    }

    /// Bytes of large answers being built or written now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl AnswerPermit {
    /// Makes this share `bytes`: a smaller one always, a larger one if the growth fits (or
    /// this answer is the only one in flight). On failure the share stays as it was.
    pub(super) fn resize(&mut self, bytes: usize) -> Result<(), AnswersBusy> {
        let held = self.bytes;
        if bytes <= held {
            self.in_flight.fetch_sub(held - bytes, Ordering::AcqRel);
        } else {
            let more = bytes - held;
            self.in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                    let alone = now == held;
                    (alone || now.saturating_add(more) <= self.limit).then(|| now + more)
                })
                .map_err(|_| AnswersBusy)?;
        }
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for AnswerPermit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_in_the_large_lane_gives_its_handler_permit_back() {
        let admission = Admission::new(4);
        let (_running, permit) = admission.handler();
        let (_also, _other) = admission.handler();
        assert_eq!(admission.handlers.free(), 2);
        let large = admission.move_to_large_lane(permit);
        assert_eq!(admission.handlers.free(), 3);
        assert_eq!(admission.large.free(), 1);
        drop(large);
        assert_eq!(admission.large.free(), 2);
    }

    #[test]
    fn a_stop_waits_for_requests_in_either_lane() {
        let admission = Arc::new(Admission::new(2));
        let (tx, rx) = std::sync::mpsc::channel();
        let running = {
            let admission = admission.clone();
            std::thread::spawn(move || {
                let (_running, permit) = admission.handler();
                let _large = admission.move_to_large_lane(permit);
                tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(200));
                std::time::Instant::now()
            })
        };
        rx.recv().unwrap();
        admission.wait_idle();
        let idle_at = std::time::Instant::now();
        assert!(idle_at >= running.join().unwrap());
    }

    #[test]
    fn a_lone_answer_always_fits_and_others_only_within_the_limit() {
        let budget = AnswerBudget::new(100);
        let alone = budget.take(500).expect("alone");
        assert!(matches!(budget.take(1), Err(AnswersBusy)));
        drop(alone);
        let a = budget.take(60).expect("a");
        let b = budget.take(40).expect("b fits exactly");
        assert!(budget.take(1).is_err());
        drop((a, b));
        assert_eq!(budget.in_flight(), 0);
    }

    #[test]
    fn a_share_grows_within_the_limit_and_shrinks_always() {
        let budget = AnswerBudget::new(100);
        let mut a = budget.take(30).expect("a");
        let _b = budget.take(50).expect("b");
        assert_eq!(a.resize(60), Err(AnswersBusy));
        assert_eq!(budget.in_flight(), 80, "a failed growth keeps the share");
        a.resize(50).expect("grows to the limit");
        a.resize(10).expect("shrinks");
        assert_eq!(budget.in_flight(), 60);
        drop(a);
        assert_eq!(budget.in_flight(), 50);
    }

    #[test]
    fn the_only_share_in_flight_may_grow_past_the_limit() {
        let budget = AnswerBudget::new(100);
        let mut a = budget.take(10).expect("a");
        a.resize(1_000).expect("alone");
        assert_eq!(budget.in_flight(), 1_000);
    }
}
