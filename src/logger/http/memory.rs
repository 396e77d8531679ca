//! Gives freed heap memory back to the operating system once a burst of connections or large
//! answers is over.
//!
//! glibc's allocator keeps what a thread freed in that thread's arena, for reuse, and returns
//! it only when the top of a heap is free; after thousands of connection threads or a batch of
//! large answers most of it is neither, so the process would stay at its peak size long after
//! the attack that caused it. `malloc_trim` returns every arena's free pages. It walks all the
//! arenas under their locks, so it runs only when the load has clearly fallen ([`Trimmer`]),
//! never on a steady load.
//!
//! The load is counted in threads, not connections: a connection's thread frees its buffers
//! when it ends, and tiny_http's pool keeps a finished thread idle a few seconds for the next
//! connection, so memory is freed only once the thread count falls.

use std::time::{Duration, Instant};

/// Threads that must have ended since the peak before a trim is worth it.
const ENDED_THREADS: usize = 64;

/// Bytes of large answers that must have been sent since the peak before a trim is worth it.
const SENT_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What the server holds now: the two things that grow the heap under an attack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Load {
    pub(super) threads: usize,
    pub(super) answer_bytes: usize,
}

impl Load {
    /// The process's load now (no threads counted where `/proc` cannot tell).
    pub(super) fn now(answer_bytes: usize) -> Load {
        Load {
            threads: process_threads().unwrap_or(0),
            answer_bytes,
        }
    }
}

/// The `Threads:` count of `/proc/self/status`.
fn process_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Threads:"))?;
    line.trim().parse().ok()
}

/// Decides when to trim: once the threads or the bytes of answers in flight have fallen
/// to half their peak since the last trim, by a margin that makes it worth the walk, and then
/// [`SETTLE`] has passed without another such fall.
#[derive(Debug, Default)]
pub(super) struct Trimmer {
    peak: Load,
    due: Option<Instant>,
}

/// How long after the last fall of the load the trim runs.
pub(super) const SETTLE: Duration = Duration::from_secs(1);

impl Trimmer {
    /// Records the load `now`, seen at `at`; true when memory should be trimmed.
    pub(super) fn observe(&mut self, now: Load, at: Instant) -> bool {
        self.peak.threads = self.peak.threads.max(now.threads);
        self.peak.answer_bytes = self.peak.answer_bytes.max(now.answer_bytes);
        let fallen = |peak: usize, now: usize, margin: usize| peak - now >= margin.max(now);
        if fallen(self.peak.threads, now.threads, ENDED_THREADS)
            || fallen(self.peak.answer_bytes, now.answer_bytes, SENT_ANSWER_BYTES)
        {
            self.peak = now;
            self.due = Some(at + SETTLE);
        }
        let trim = self.due.is_some_and(|due| at >= due);
        if trim {
            self.due = None;
        }
        trim
    }
}

/// Returns the free pages of every heap arena to the operating system.
pub(super) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own structures, under their locks.
        let released = unsafe { libc::malloc_trim(0) };
        log::debug!("heap trimmed (memory released: {})", released == 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `loads` one a second apart (so each fall has settled by the next); the indices
    /// of those after which a trim ran.
    fn trims(loads: &[(usize, usize)]) -> Vec<usize> {
        let mut trimmer = Trimmer::default();
        let start = Instant::now();
        let mut trimmed = Vec::new();
        for (i, &(threads, answer_bytes)) in loads.iter().enumerate() {
            let load = Load {
                threads,
                answer_bytes,
            };
            let at = start + SETTLE * i as u32;
            if trimmer.observe(load, at) {
                trimmed.push(i);
            }
        }
        trimmed
    }

    #[test]
    fn a_steady_or_growing_load_is_never_trimmed() {
        let steady = [0, 10, 500, 5_000, 5_000, 4_990, 5_000].map(|c| (c, 0));
        assert_eq!(trims(&steady), Vec::<usize>::new());
    }

    #[test]
    fn threads_falling_to_half_their_peak_by_the_margin_trim_a_moment_later() {
        let loads = [
            (1_000, 0),
            (501, 0),
            (500, 0),
            (499, 0),
            (499, 0),
            (0, 0),
            (0, 0),
        ];
        // Falls at 2 (to half of 1,000) and 5 (to nothing from 499); each trims once settled.
        assert_eq!(trims(&loads), vec![3, 6]);
    }

    #[test]
    fn a_fall_that_goes_on_delays_the_trim_until_it_settles() {
        let mut trimmer = Trimmer::default();
        let start = Instant::now();
        let load = |threads| Load {
            threads,
            answer_bytes: 0,
        };
        let tick = SETTLE / 2;
        assert!(!trimmer.observe(load(4_000), start));
        assert!(!trimmer.observe(load(2_000), start + tick));
        assert!(!trimmer.observe(load(1_000), start + tick * 2));
        assert!(!trimmer.observe(load(500), start + tick * 3));
        assert!(trimmer.observe(load(500), start + tick * 5));
    }

    #[test]
    fn a_small_drop_is_not_worth_a_trim_even_to_zero() {
        let loads = [
            (ENDED_THREADS - 1, 0),
            (0, 0),
            (0, 0),
            (0, SENT_ANSWER_BYTES - 1),
            (0, 0),
            (0, 0),
        ];
        assert_eq!(trims(&loads), Vec::<usize>::new());
    }

    #[test]
    fn large_answers_sent_trim_without_any_thread_ending() {
        let loads = [(8, 100 << 20), (8, 0), (8, 0)];
        assert_eq!(trims(&loads), vec![2]);
    }

    #[test]
    fn the_load_counts_this_process_s_threads() {
        let (stop, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        let held: Vec<_> = (0..8)
            .map(|_| {
                let wait = wait.clone();
                std::thread::spawn(move || wait.lock().map(|w| w.recv()).ok())
            })
            .collect();
        // This thread and the eight it holds, at least (other tests' threads come and go).
        let threads = Load::now(0).threads;
        assert!(threads >= 9, "{threads}");
        drop(stop);
        for thread in held {
            let _ = thread.join();
        }
    }
}
