//! The Event Logger's HTTP API (`openapi/API.md`): the handlers behind the one route table.
//!
//! [`Api::handle`] looks the path up in [`routes::ROUTES`]: unknown paths get `404`, known
//! paths with another method `405` with `Allow`, and both `/x` and `/x/` are answered directly.
//! Then come authentication (`401`, `/events` routes only), input parsing (`413`, `422`,
//! [`input`]) and the work on the store and the outbox. This layer never sees the notifier or
//! AMQP: it hands events to the outbox and reads its status. With `DATA_DIR`, creates and
//! updates go through the storage writer (answered once committed, `503` when the disk fails)
//! and reads still come from the store.

pub(crate) mod conditional;
pub(crate) mod docs;
pub(crate) mod errors;
pub(crate) mod input;
pub(crate) mod openapi;
pub(crate) mod routes;
pub(crate) mod schemas;

use subtle::ConstantTimeEq;
use uuid::Uuid;

use self::errors::{ErrorDetail, ValidationErrors, error, unprocessable};
use self::routes::Endpoint;
use self::schemas::{Health, Ping};
use crate::logger::http::{BodyError, Request, Response};
use crate::logger::metrics;
use crate::logger::outbox::{HandOffError, Outbox, OutboxStatus};
use crate::logger::storage::{StorageError, StorageStatus, Writer};
use crate::logger::store::{Conditional, INITIAL_VERSION, PageSize, Store};
use crate::shared::env::Secret;
use crate::shared::event::{Event, EventUpdate, NewEvent, Timestamp};
use crate::shared::metrics as shared_metrics;

/// No event's JSON in a list is shorter than this plus its strings (its id, two timestamps
/// and field names alone are longer; escaping only lengthens the strings), so a page's answer
/// is at least its [`PageSize`] in these terms.
const MIN_EVENT_JSON_BYTES: usize = 150;

/// A lower bound of the bytes of a page's JSON answer.
fn answer_bytes_at_least(page: PageSize) -> usize {
    page.events
        .saturating_mul(MIN_EVENT_JSON_BYTES + 1)
        .saturating_add(page.text_bytes)
}

/// What the handlers share.
pub(crate) struct Api {
    store: Store,
    outbox: Outbox,
    status: OutboxStatus,
    /// `None`: in memory, the handlers change the store themselves.
    writer: Option<Writer>,
    storage: StorageStatus,
    api_token: Option<Secret>,
}

/// Why a create or update was not stored.
enum WriteError {
    HandOff(HandOffError),
    Storage(StorageError),
}

impl WriteError {
    fn response(&self) -> Response {
        let (detail, retry) = match self {
            WriteError::HandOff(HandOffError::Full) => {
                ("notification queue is full, retry later".to_owned(), "1")
            }
            WriteError::HandOff(HandOffError::Closed) => (
                "notification service is shutting down, retry later".to_owned(),
                "1",
            ),
            WriteError::Storage(e) => {
                log::debug!("write refused: {e}");
                (format!("{e}; nothing was stored, retry later"), "5")
            }
        };
        error(503, &detail).with_header("Retry-After", retry)
    }
}

impl Api {
    pub(crate) fn new(
        store: Store,
        outbox: Outbox,
        writer: Option<Writer>,
        storage: StorageStatus,
        api_token: Option<Secret>,
    ) -> Api {
        let status = outbox.status();
        Api {
            store,
            outbox,
            status,
            writer,
            storage,
            api_token,
        }
    }

    /// Answers one request, counted in the metrics by route template, method and status.
    pub(crate) fn handle(&self, request: &mut Request<'_>) -> Response {
        let started = std::time::Instant::now();
        // Matched on the percent-decoded path, as Starlette does (`/ev%65nts` is `/events`).
        let path = percent_encoding::percent_decode_str(&request.path).decode_utf8_lossy();
        let matched = routes::match_path(&path);
        let (route, method) = match &matched {
            Some(m) => (
                m.route.metrics_label(),
                m.route
                    .endpoint(&request.method)
                    .map_or("other", |e| e.method()),
            ),
            None => ("unmatched", "other"),
        };
        let response = self.answer(matched, request);
        metrics::request(route, method, response.status, started.elapsed());
        response
    }

    fn answer(&self, matched: Option<routes::Matched>, request: &mut Request<'_>) -> Response {
        let Some(matched) = matched else {
            return error(404, "Not Found");
        };
        let route = matched.route;
        let Some(endpoint) = route.endpoint(&request.method) else {
            return error(405, "Method Not Allowed").with_header("Allow", route.allow());
        };
        if route.needs_token && !self.authorized(request) {
            return error(401, "Not authenticated").with_header("WWW-Authenticate", "Bearer");
        }
        let param = matched.param;
        match endpoint {
            Endpoint::Ping => Response::json(
                200,
                &Ping {
                    now: Timestamp::now(),
                },
            ),
            Endpoint::Health => self.health(),
            Endpoint::Metrics => self.metrics(),
            Endpoint::OpenApi => openapi::response(),
            Endpoint::Docs => docs::response(&param),
            Endpoint::ListEvents => self.list(request),
            Endpoint::CreateEvent => self.create(request),
            Endpoint::GetEvent => self.get(&param, request),
            Endpoint::PutEvent | Endpoint::PatchEvent => self.update(&param, request),
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
                returns: self.status.returns(),
                broker_error: self.status.broker_error(),
                events: self.store.len(),
                storage: self.storage.state().into(),
                storage_error: self.storage.error(),
            },
        )
    }

    fn metrics(&self) -> Response {
        metrics::EVENTS_STORED.set(gauge_value(self.store.len()));
        metrics::OUTBOX_PENDING.set(gauge_value(self.status.pending()));
        let connected = self.status.broker() == crate::logger::outbox::BrokerState::Connected;
        metrics::BROKER_CONNECTED.set(i64::from(connected));
        Response::raw(
            200,
            shared_metrics::CONTENT_TYPE,
            shared_metrics::render().into(),
        )
    }

    fn list(&self, request: &mut Request<'_>) -> Response {
        let query = match input::list_query(&request.query) {
            Ok(query) => query,
            Err(errors) => return unprocessable(&errors),
        };
        // A big page is copied and serialised only if the answer budget has room for it.
        let found = self.store.find(&query);
        if let Err(busy) = request.reserve_answer(answer_bytes_at_least(found.size)) {
            return error(503, &busy.to_string()).with_header("Retry-After", "1");
        }
        let page = self.store.copy(found);
        Response::json(200, &page.events).with_header("X-Total-Count", page.total.to_string())
    }

    fn create(&self, request: &mut Request<'_>) -> Response {
        let body = match read_body(request) {
            Ok(body) => body,
            Err(response) => return response,
        };
        let new = match NewEvent::parse(&body) {
            Ok(new) => new,
            Err(errors) => return unprocessable(&errors),
        };
        let event = Event::create(new);
        let slot = self.outbox.reserve().map_err(WriteError::HandOff);
        let stored = match &self.writer {
            None => slot.and_then(|slot| {
                self.store
                    .insert_with(event, |event| slot.send(event.clone()))
                    .map_err(WriteError::HandOff)
            }),
            Some(writer) => {
                slot.and_then(|slot| writer.create(event, slot).map_err(WriteError::Storage))
            }
        };
        match stored {
            Ok(event) => {
                metrics::EVENTS_CREATED.inc();
                let location = format!("/events/{}", event.event_id);
                Response::json(200, &event)
                    .with_header("Location", location)
                    .with_header("ETag", conditional::etag(INITIAL_VERSION))
            }
            Err(e) => e.response(),
        }
    }

    fn get(&self, id: &str, request: &Request<'_>) -> Response {
        let id = match event_id(id) {
            Ok(id) => id,
            Err(detail) => return unprocessable(&ValidationErrors { detail }),
        };
        let Some(stored) = self.store.get_versioned(&id) else {
            return error(404, "Event not found");
        };
        let etag = conditional::etag(stored.version);
        if request
            .header("If-None-Match")
            .is_some_and(|h| conditional::none_match_fails(h, stored.version))
        {
            return Response::raw(304, "", std::borrow::Cow::Borrowed(b""))
                .with_header("ETag", etag);
        }
        Response::json(200, &stored.event).with_header("ETag", etag)
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
                return unprocessable(&ValidationErrors { detail });
            }
        };
        // Checked and applied under one write lock: nothing can change the event in between.
        let if_match = request.header("If-Match").map(str::to_owned);
        let precondition = move |version| {
            if_match
                .as_deref()
                .is_none_or(|h| conditional::if_match(h, version))
        };
        let outcome = match &self.writer {
            None => self.store.update_if(&id, update, precondition),
            Some(writer) => match writer.update(id, update, precondition) {
                Ok(outcome) => outcome,
                Err(e) => return WriteError::Storage(e).response(),
            },
        };
        match outcome {
            Conditional::Updated(stored) => Response::json(200, &stored.event)
                .with_header("ETag", conditional::etag(stored.version)),
            Conditional::NotFound => error(404, "Event not found"),
            Conditional::Failed { current } => error(
                412,
                "If-Match does not match the event's current ETag: it changed since it was read",
            )
            .with_header("ETag", conditional::etag(current)),
        }
    }
}

fn gauge_value(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// The `{event_id}` segment (of the already percent-decoded path), parsed.
fn event_id(segment: &str) -> Result<Uuid, Vec<ErrorDetail>> {
    input::parse_event_id(segment).map_err(|e| e.detail)
}

/// Both errors leave the body unread, so the connection closes after the answer, which says so.
fn read_body(request: &mut Request<'_>) -> Result<Vec<u8>, Response> {
    let refused = request.body().map_err(|e| match e {
        BodyError::TooLarge => error(413, "Request body too large"),
        BodyError::Read(e) => {
            log::debug!("could not read a request body: {e}");
            error(400, &format!("could not read the request body: {e}"))
        }
    });
    refused.map_err(|r| r.with_header("Connection", "close"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_page_serialises_shorter_than_its_lower_bound() {
        let texts = [
            ("u", "d", "s"),
            ("u\"\\", "\u{1}\n\t", "é漢"),
            ("ab", "🦀", "Processed"),
        ];
        let page: Vec<Event> = texts
            .iter()
            .map(|(user, description, status)| {
                let mut event = crate::shared::event::sample(user, description);
                event.status = (*status).into();
                event
            })
            .collect();
        for len in 0..=page.len() {
            let events = &page[..len];
            let size = PageSize::of(events);
            let json = serde_json::to_vec(events).expect("serialises");
            let bound = answer_bytes_at_least(size);
            assert!(
                json.len() >= bound,
                "{len} events: {} < {bound}",
                json.len()
            );
            // Tight enough to refuse early: within a few dozen bytes an event.
            assert!(json.len() <= bound + 2 + len * 64, "{len}: {}", json.len());
        }
    }
}
