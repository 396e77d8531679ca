// PATCHED (see PATCHES.md, fix 18): a new file.
//! What an application tunes about the connections of one server, shared by the server, its
//! accept thread and every connection: set through `Server` methods, read when used, so a
//! setting applies to the connections already open too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::Request;

/// What [`Server::set_connection_handler`](crate::Server::set_connection_handler) takes.
pub type ConnectionHandler = dyn Fn(Request) + Send + Sync;

/// The settings of one server.
#[derive(Clone, Default)]
pub(crate) struct Tuning {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    handler: RwLock<Option<Arc<ConnectionHandler>>>,
    // fix 20: the stack of connection threads started from now on (0: Rust's default)
    stack_size: AtomicUsize,
    // fix 21: the connections open now, and at most (0: no limit)
    open: AtomicUsize,
    max_connections: AtomicUsize,
}

/// One open connection, counted until dropped (fix 21).
pub(crate) struct OpenConnection {
    tuning: Tuning,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.tuning.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Tuning {
    pub(crate) fn set_handler(&self, handler: Arc<ConnectionHandler>) {
        *self.inner.handler.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    pub(crate) fn handler(&self) -> Option<Arc<ConnectionHandler>> {
        self.inner
            .handler
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_stack_size(&self, bytes: usize) {
        self.inner.stack_size.store(bytes, Ordering::Release);
    }

    pub(crate) fn stack_size(&self) -> usize {
        self.inner.stack_size.load(Ordering::Acquire)
    }

    pub(crate) fn set_max_connections(&self, max: usize) {
        self.inner.max_connections.store(max, Ordering::Release);
    }

    /// Whether a new connection would exceed the limit. Only the accept thread opens
    /// connections, so checking, then counting with [`Tuning::open_connection`], is no race.
    pub(crate) fn at_connection_limit(&self) -> bool {
        let max = self.inner.max_connections.load(Ordering::Acquire);
        max > 0 && self.open_connections() >= max
    }

    pub(crate) fn open_connection(&self) -> OpenConnection {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        OpenConnection {
            tuning: self.clone(),
        }
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }
}
