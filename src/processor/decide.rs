//! The processor's policy, as pure functions unit-tested without a broker: what an answer of
//! the API means for the message ([`decide`]), and what a stored event's status means for its
//! notification ([`notice`]).

use std::time::Duration;

use super::api_client::ApiAnswer;
use crate::shared::event::{STATUS_NOT_PROCESSED, STATUS_PROCESSED};

/// What to do with a message after an answer from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ack,
    /// `412` to the `PUT`: a client changed the event since it was read. Its update stands;
    /// the message is acked.
    Changed,
    /// The API cannot answer for now: not the message's fault. Send the same request again
    /// after a pause, the message still unacked, without counting an attempt.
    Pause(Pause),
    /// A failure that may belong to the message: try again after this delay, the message
    /// still unacked.
    Retry(Duration),
    /// Reject without requeue: the broker moves it to the dead-letter queue.
    DeadLetter(String),
}

/// Why the API cannot be used for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    /// No answer, or `502`/`503`/`504`/`429` (a proxy with the logger behind it down, or a
    /// logger that asks to come back later).
    Unavailable,
    /// `401`/`403`: the logger refuses our `API_TOKEN`; only an operator can fix that.
    Refused(u16),
}

/// Delay before the attempt numbered `attempt + 1`: 500 ms, 1 s, 2 s, ... capped at 10 s.
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    let doubled = 500u64.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(doubled.min(10_000))
}

/// The decision after the `attempt`-th (1-based) `GET` or `PUT` of a message got `answer`.
///
/// `2xx`: ack. `412`: [`Outcome::Changed`]. `404`: the event does not exist, and never will:
/// dead-letter. `400`/`413`/`422`: the API rejects the request itself, retrying cannot help:
/// dead-letter. Unavailable or refused: [`Outcome::Pause`], whatever the attempt. Anything else
/// (`500`, an unusable answer, ...): retry with backoff, and dead-letter after `max_attempts`.
pub(crate) fn decide(answer: &ApiAnswer, attempt: u32, max_attempts: u32) -> Outcome {
    match answer {
        ApiAnswer::Status(200..=299) => Outcome::Ack,
        ApiAnswer::Status(412) => Outcome::Changed,
        ApiAnswer::Status(404) => {
            Outcome::DeadLetter("the API does not know the event (404)".into())
        }
        ApiAnswer::Status(code @ (400 | 413 | 422)) => {
            Outcome::DeadLetter(format!("the API rejected the request (HTTP {code})"))
        }
        ApiAnswer::Status(code @ (401 | 403)) => Outcome::Pause(Pause::Refused(*code)),
        ApiAnswer::Status(429 | 502 | 503 | 504) | ApiAnswer::Unreachable(_) => {
            Outcome::Pause(Pause::Unavailable)
        }
        _ if attempt >= max_attempts => Outcome::DeadLetter(format!(
            "gave up after {attempt} attempts; last answer: {answer}"
        )),
        _ => Outcome::Retry(retry_delay(attempt)),
    }
}

/// What the status an event has when it is read means for its notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// `NotProcessed`: print it, then mark it `Processed`.
    Send,
    /// `Processed`: it was notified already (a redelivered or duplicated message): ack without
    /// printing again.
    AlreadySent,
    /// Any other status was set by a client (`Cancelled`, say): the client decided about this
    /// event, so it is not notified; ack.
    Skip,
}

pub(crate) fn notice(status: &str) -> Notice {
    match status {
        STATUS_NOT_PROCESSED => Notice::Send,
        STATUS_PROCESSED => Notice::AlreadySent,
        _ => Notice::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_acks_and_permanent_errors_dead_letter_at_once() {
        for code in [200, 201, 204] {
            assert_eq!(decide(&ApiAnswer::Status(code), 1, 5), Outcome::Ack);
        }
        for code in [404, 400, 422, 413] {
            assert!(
                matches!(
                    decide(&ApiAnswer::Status(code), 1, 5),
                    Outcome::DeadLetter(_)
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn a_changed_event_is_acked_as_changed_at_any_attempt() {
        for attempt in [1, 5, 100] {
            assert_eq!(
                decide(&ApiAnswer::Status(412), attempt, 5),
                Outcome::Changed
            );
        }
    }

    #[test]
    fn an_unavailable_or_refusing_api_pauses_and_spends_no_attempt() {
        let unavailable = [
            ApiAnswer::Unreachable("connection refused".into()),
            ApiAnswer::Unreachable("timeout".into()),
            ApiAnswer::Status(502),
            ApiAnswer::Status(503),
            ApiAnswer::Status(504),
            ApiAnswer::Status(429),
        ];
        for answer in unavailable {
            // Even past MAX_ATTEMPTS: the count belongs to the message, not to the API.
            for attempt in [1, 5, 1000] {
                assert_eq!(
                    decide(&answer, attempt, 5),
                    Outcome::Pause(Pause::Unavailable),
                    "{answer}"
                );
            }
        }
        for code in [401, 403] {
            assert_eq!(
                decide(&ApiAnswer::Status(code), 5, 5),
                Outcome::Pause(Pause::Refused(code))
            );
        }
    }

    #[test]
    fn failures_of_the_message_retry_until_max_attempts() {
        for answer in [
            ApiAnswer::Status(500),
            ApiAnswer::Status(501),
            ApiAnswer::Status(409),
            ApiAnswer::Malformed("no ETag".into()),
        ] {
            assert_eq!(
                decide(&answer, 1, 5),
                Outcome::Retry(Duration::from_millis(500))
            );
            assert_eq!(
                decide(&answer, 4, 5),
                Outcome::Retry(Duration::from_secs(4))
            );
            let Outcome::DeadLetter(why) = decide(&answer, 5, 5) else {
                panic!("attempt 5 of 5 must dead-letter");
            };
            assert!(why.contains("5 attempts"), "{why}");
        }
        assert_eq!(retry_delay(30), Duration::from_secs(10));
    }

    #[test]
    fn only_a_not_processed_event_is_sent() {
        assert_eq!(notice("NotProcessed"), Notice::Send);
        assert_eq!(notice("Processed"), Notice::AlreadySent);
        for status in ["Cancelled", "processed", "NotProcessed ", "Archived"] {
            assert_eq!(notice(status), Notice::Skip, "{status}");
        }
    }
}
