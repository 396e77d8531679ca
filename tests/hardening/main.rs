//! Abuse of the HTTP layer, in-process: connection-level attacks (idle, half-sent, slow and
//! oversized requests, thousands of connections, random bytes), request framing and smuggling
//! (`framing`), and what the vendored tiny_http answers by itself before any handler runs.
//!
//! Tests that count threads or open thousands of sockets take [`heavy`] (exclusive), the others
//! [`light`] (shared), so that the tests running beside them in this process do not disturb
//! what they measure.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[path = "../common"]
mod common {
    pub mod app;
    pub mod event;
    pub mod http;
    pub mod nginx;
    #[allow(dead_code)]
    pub mod output;
    #[allow(dead_code)]
    pub mod process;
    pub mod wait;
}

mod attacks;
mod connections;
mod framing;
mod pipelining;
mod protocol;

static HEAVY: RwLock<()> = RwLock::new(());

/// Shared with the other light tests; excludes the heavy ones.
fn light() -> RwLockReadGuard<'static, ()> {
    HEAVY.read().unwrap_or_else(|e| e.into_inner())
}

/// This test alone.
fn heavy() -> RwLockWriteGuard<'static, ()> {
    HEAVY.write().unwrap_or_else(|e| e.into_inner())
}

/// Threads of this test process (server threads included: the tests run it in-process).
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: line")
}
