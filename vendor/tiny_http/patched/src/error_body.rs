// PATCHED (see PATCHES.md, fix 4): a new file.
//! The body of the answers tiny_http gives by itself, without a handler: upstream's, unless
//! the application sets its own with [`Server::set_error_body`](crate::Server::set_error_body).

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use crate::{Header, Response, StatusCode};

/// What [`Server::set_error_body`](crate::Server::set_error_body) takes.
pub(crate) type ErrorBodyFn = dyn Fn(StatusCode, &str) -> (Vec<u8>, Header) + Send + Sync;

/// The hook of one server, shared with all its connections.
#[derive(Clone, Default)]
pub(crate) struct ErrorBodies {
    hook: Arc<RwLock<Option<Arc<ErrorBodyFn>>>>,
}

impl ErrorBodies {
    pub(crate) fn set(&self, hook: Arc<ErrorBodyFn>) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Upstream's empty answer with status `code`, or the hook's body for it.
    pub(crate) fn empty(&self, code: u16, reason: &str) -> Response<Cursor<Vec<u8>>> {
        self.hooked(code, reason)
            .unwrap_or_else(|| Response::from_data(Vec::new()).with_status_code(code))
    }

    /// Upstream's plain-text answer `text` with status `code`, or the hook's body for it.
    pub(crate) fn text(&self, code: u16, text: &str) -> Response<Cursor<Vec<u8>>> {
        self.hooked(code, text)
            .unwrap_or_else(|| Response::from_string(text).with_status_code(code))
    }

    /// PATCHED (fix 21): the hook's body and `Content-Type` for `code`, or upstream's (empty,
    /// no type), for an answer written without a `Response`.
    pub(crate) fn body(&self, code: u16, reason: &str) -> (Vec<u8>, Option<Header>) {
        match self.hook.read().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(hook) => {
                let (body, content_type) = hook(StatusCode(code), reason);
                (body, Some(content_type))
            }
            None => (Vec::new(), None),
        }
    }

    fn hooked(&self, code: u16, reason: &str) -> Option<Response<Cursor<Vec<u8>>>> {
        // PATCHED (fix 21): through `body`
        let (body, content_type) = self.body(code, reason);
        Some(
            Response::from_data(body)
                .with_status_code(code)
                .with_header(content_type?),
        )
    }
}
