use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant}; // PATCHED

use crate::tuning::Tuning; // PATCHED

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Box<dyn FnMut() + Send>>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,

    // PATCHED (fix 20): the stack of each thread (the server's setting), and when a failure
    // to start one was last logged
    tuning: Tuning,
    last_spawn_warning: Mutex<Option<Instant>>,
}

/// PATCHED (fix 20): failures to start a thread are logged at most this often.
const SPAWN_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {
    // PATCHED (fix 20): threads get the stack that `tuning` says when they start
    pub(crate) fn new(tuning: Tuning) -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
                tuning,                               // PATCHED
                last_spawn_warning: Mutex::new(None), // PATCHED
            }),
        };

        for _ in 0..MIN_THREADS {
            pool.add_thread(None)
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Box<dyn FnMut() + Send>) {
        let mut queue = self.sharing.todo.lock().unwrap();

        // PATCHED (see PATCHES.md): a woken thread stays counted as waiting until it takes the
        // lock again, so in a burst of connections every task was queued for the same few
        // "waiting" threads, and each queued connection waited until a running one closed.
        // Only as many tasks as there are waiting threads may be queued.
        if self.sharing.waiting_tasks.load(Ordering::Acquire) <= queue.len() {
            self.add_thread(Some(code));
        } else {
            queue.push_back(code);
            self.sharing.condvar.notify_one();
        }
    }

    fn add_thread(&self, initial_fn: Option<Box<dyn FnMut() + Send>>) {
        let sharing = self.sharing.clone();

        // PATCHED (fix 20): upstream's `thread::spawn` panicked when no thread could be
        // started (out of memory or of the process's thread limit), which killed the accept
        // thread that calls this: the server went deaf for good. Now the task (a connection)
        // is dropped, which closes it, and the failure is logged.
        let mut builder = thread::Builder::new();
        let stack_size = self.sharing.tuning.stack_size();
        if stack_size > 0 {
            builder = builder.stack_size(stack_size);
        }
        let spawned = builder.spawn(move || {
            let sharing = sharing;
            let _active_guard = Registration::new(&sharing.active_tasks);

            if let Some(mut f) = initial_fn {
                f();
            }

            loop {
                let mut task: Box<dyn FnMut() + Send> = {
                    let mut todo = sharing.todo.lock().unwrap();

                    let task;
                    loop {
                        if let Some(poped_task) = todo.pop_front() {
                            task = poped_task;
                            break;
                        }
                        let _waiting_guard = Registration::new(&sharing.waiting_tasks);

                        let received =
                            if sharing.active_tasks.load(Ordering::Acquire) <= MIN_THREADS {
                                todo = sharing.condvar.wait(todo).unwrap();
                                true
                            } else {
                                let (new_lock, waitres) = sharing
                                    .condvar
                                    .wait_timeout(todo, Duration::from_millis(5000))
                                    .unwrap();
                                todo = new_lock;
                                !waitres.timed_out()
                            };

                        if !received && todo.is_empty() {
                            return;
                        }
                    }

                    task
                };

                task();
            }
        });
        if let Err(e) = spawned {
            self.warn_spawn_failure(&e);
        }
    }

    /// PATCHED (fix 20): logs a failure to start a thread, at most once per interval.
    fn warn_spawn_failure(&self, e: &std::io::Error) {
        let mut last = self
            .sharing
            .last_spawn_warning
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.map_or(true, |at| at.elapsed() >= SPAWN_WARNING_INTERVAL) {
            *last = Some(Instant::now());
            log::warn!("cannot start a connection thread, closing the connection: {}", e);
        }
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}
