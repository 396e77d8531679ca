//! The HTTP transport: a `tiny_http` server on a listener we configure ourselves, served by a
//! fixed pool of blocking worker threads, and the watchdog that notices when it stops
//! accepting connections.
//!
//! It knows no routes and no events: handlers see a small [`Request`] and return a
//! [`Response`], and never touch tiny_http.

mod message;
mod server;
pub(crate) mod watchdog;

pub use message::{BodyError, Request, Response};
pub use server::{Handler, HttpServer, OnFailure, ServerConfig, ServerError};
