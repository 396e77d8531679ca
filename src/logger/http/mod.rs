//! The HTTP transport: a `tiny_http` server on a listener we configure ourselves, each
//! connection on its own thread with at most `HTTP_THREADS` handlers running at once
//! (`admission`), freed memory given back after a burst (`memory`), and the watchdog that
//! notices when it stops accepting connections.
//!
//! It knows no routes and no events: handlers see a small [`Request`] and return a
//! [`Response`], and never touch tiny_http.

mod admission;
mod memory;
mod message;
mod server;
pub(crate) mod watchdog;

pub use admission::AnswersBusy;
pub use message::{BodyError, Request, Response};
pub use server::{Handler, HttpServer, OnFailure, ServerConfig, ServerError};
