//! The router and the handlers of the Event Logger's HTTP API (`../shared/API.md`).
//!
//! [`Api::handle`] maps (method, path) to a handler: unknown paths get `404`, known paths with
//! another method `405` with `Allow`, and both `/x` and `/x/` are answered directly. Then come
//! authentication (`401`, `/events` routes only), input parsing (`413`, `422`) and the work.

use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::config::Secret;
use crate::event::{Event, EventUpdate, NewEvent, Timestamp};
use crate::http::{BodyError, Request, Response};
use crate::outbox::{HandOffError, Outbox, OutboxStatus};
use crate::store::Store;
use crate::validation::{self, ErrorDetail, ListQuery, ValidationErrors};

/// What the handlers share.
pub struct Api {
    store: Store,
    outbox: Outbox,
    status: OutboxStatus,
    api_token: Option<Secret>,
}

/// The routes, as the router matches them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Ping,
    Health,
    Events,
    Event(String),
    OpenApi,
    /// `/docs` and its assets; the string is the asset path after `/docs/` ("" for the page).
    Docs(String),
}

impl Route {
    /// Matches a path, ignoring one trailing slash.
    fn of(path: &str) -> Option<Route> {
        let trimmed = if path.len() > 1 {
            path.strip_suffix('/').unwrap_or(path)
        } else {
            path
        };
        let route = match trimmed {
            "/ping" => Route::Ping,
            "/health" => Route::Health,
            "/events" => Route::Events,
            "/openapi.json" => Route::OpenApi,
            "/docs" => Route::Docs(String::new()),
            _ => {
                if let Some(asset) = path.strip_prefix("/docs/") {
                    Route::Docs(asset.to_owned())
                } else {
                    let id = trimmed.strip_prefix("/events/")?;
                    if id.is_empty() || id.contains('/') {
                        return None;
                    }
                    Route::Event(id.to_owned())
                }
            }
        };
        Some(route)
    }

    fn allowed(&self) -> &'static [&'static str] {
        match self {
            Route::Events => &["GET", "POST"],
            Route::Event(_) => &["GET", "PUT", "PATCH"],
            Route::Ping | Route::Health | Route::OpenApi | Route::Docs(_) => &["GET"],
        }
    }

    fn needs_token(&self) -> bool {
        matches!(self, Route::Events | Route::Event(_))
    }
}

/// The body of `GET /ping`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Ping {
    /// The server's current time, RFC 3339 in UTC with microseconds.
    pub now: Timestamp,
}

/// The body of `GET /health`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    #[schemars(extend("enum" = ["ok"]))]
    pub status: String,
    /// `embedded` (no broker configured), `connected` or `disconnected`.
    #[schemars(extend("enum" = ["embedded", "connected", "disconnected"]))]
    pub broker: String,
    /// Events accepted but not yet handed on (confirmed by the broker, or printed in embedded
    /// mode).
    pub pending: usize,
    /// Events stored.
    pub events: usize,
}

impl Api {
    pub fn new(store: Store, outbox: Outbox, api_token: Option<Secret>) -> Api {
        let status = outbox.status();
        Api {
            store,
            outbox,
            status,
            api_token,
        }
    }

    /// Answers one request.
    pub fn handle(&self, request: &mut Request<'_>) -> Response {
        // Matched on the percent-decoded path, as Starlette does (`/ev%65nts` is `/events`).
        let path = percent_encoding::percent_decode_str(&request.path).decode_utf8_lossy();
        let Some(route) = Route::of(&path) else {
            return Response::detail(404, "Not Found");
        };
        let allowed = route.allowed();
        if !allowed.contains(&request.method.as_str()) {
            return Response::detail(405, "Method Not Allowed")
                .with_header("Allow", allowed.join(", "));
        }
        if route.needs_token() && !self.authorized(request) {
            return Response::detail(401, "Not authenticated")
                .with_header("WWW-Authenticate", "Bearer");
        }
        match (request.method.as_str(), route) {
            (_, Route::Ping) => Response::json(
                200,
                &Ping {
                    now: Timestamp::now(),
                },
            ),
            (_, Route::Health) => self.health(),
            (_, Route::OpenApi) => crate::openapi::response(),
            (_, Route::Docs(asset)) => crate::docs::response(&asset),
            ("GET", Route::Events) => self.list(request),
            ("POST", Route::Events) => self.create(request),
            ("GET", Route::Event(id)) => self.get(&id),
            (_, Route::Event(id)) => self.update(&id, request),
            (method, route) => {
                // `allowed()` and this match disagree: a programming error, not bad input.
                log::error!("no handler for {method} {route:?}");
                Response::detail(500, "Internal Server Error")
            }
        }
    }

    fn authorized(&self, request: &Request<'_>) -> bool {
        let Some(token) = &self.api_token else {
            return true;
        };
        let Some(value) = request.header("Authorization") else {
            return false;
        };
        let Some((scheme, given)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(given.trim().as_bytes().ct_eq(token.expose().as_bytes()))
    }

    fn health(&self) -> Response {
        Response::json(
            200,
            &Health {
                status: "ok".into(),
                broker: self.status.broker().as_str().into(),
                pending: self.status.pending(),
                events: self.store.len(),
            },
        )
    }

    fn list(&self, request: &Request<'_>) -> Response {
        let query = match ListQuery::parse(&request.query) {
            Ok(query) => query,
            Err(errors) => return Response::json(422, &errors),
        };
        let page = self.store.list(&query);
        Response::json(200, &page.events).with_header("X-Total-Count", page.total.to_string())
    }

    fn create(&self, request: &mut Request<'_>) -> Response {
        let body = match read_body(request) {
            Ok(body) => body,
            Err(response) => return response,
        };
        let new = match NewEvent::parse(&body) {
            Ok(new) => new,
            Err(errors) => return Response::json(422, &errors),
        };
        let stored = self.outbox.reserve().and_then(|slot| {
            self.store
                .insert_with(Event::create(new), |event| slot.send(event.clone()))
        });
        match stored {
            Ok(event) => {
                let location = format!("/events/{}", event.event_id);
                Response::json(200, &event).with_header("Location", location)
            }
            Err(e @ (HandOffError::Full | HandOffError::Closed)) => {
                Response::detail(503, &e.to_string()).with_header("Retry-After", "1")
            }
        }
    }

    fn get(&self, id: &str) -> Response {
        let id = match event_id(id) {
            Ok(id) => id,
            Err(errors) => return Response::json(422, &ValidationErrors { detail: errors }),
        };
        match self.store.get(&id) {
            Some(event) => Response::json(200, &event),
            None => Response::detail(404, "Event not found"),
        }
    }

    fn update(&self, id: &str, request: &mut Request<'_>) -> Response {
        // FastAPI reports path and body problems together, so both are parsed before either
        // is answered.
        let id = event_id(id);
        let body = match read_body(request) {
            Ok(body) => body,
            Err(response) => return response,
        };
        let update = EventUpdate::parse(&body);
        let (id, update) = match (id, update) {
            (Ok(id), Ok(update)) => (id, update),
            (id, update) => {
                let mut detail = id.err().unwrap_or_default();
                detail.extend(update.err().map(|e| e.detail).unwrap_or_default());
                return Response::json(422, &ValidationErrors { detail });
            }
        };
        match self.store.update(&id, update) {
            Some(event) => Response::json(200, &event),
            None => Response::detail(404, "Event not found"),
        }
    }
}

/// The `{event_id}` segment (of the already percent-decoded path), parsed.
fn event_id(segment: &str) -> Result<Uuid, Vec<ErrorDetail>> {
    validation::parse_event_id(segment).map_err(|e| e.detail)
}

fn read_body(request: &mut Request<'_>) -> Result<Vec<u8>, Response> {
    request.body().map_err(|e| match e {
        BodyError::TooLarge => Response::detail(413, "Request body too large"),
        BodyError::Read(e) => {
            log::debug!("could not read a request body: {e}");
            Response::json(
                400,
                &json!({"detail": format!("could not read the request body: {e}")}),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_and_without_trailing_slash() {
        for (path, route) in [
            ("/ping", Some(Route::Ping)),
            ("/ping/", Some(Route::Ping)),
            ("/events", Some(Route::Events)),
            ("/events/", Some(Route::Events)),
            ("/events/abc", Some(Route::Event("abc".into()))),
            ("/events/abc/", Some(Route::Event("abc".into()))),
            ("/docs", Some(Route::Docs(String::new()))),
            ("/docs/", Some(Route::Docs(String::new()))),
            ("/docs/x.css", Some(Route::Docs("x.css".into()))),
            ("/events/a/b", None),
            ("/events//", None),
            ("/", None),
            ("/pingx", None),
        ] {
            assert_eq!(Route::of(path), route, "{path}");
        }
    }
}
