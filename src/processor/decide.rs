//! The retry and dead-letter policy of the processor: a pure function of the API's answer and
//! the attempt count, so every branch is unit-tested without a broker.

use std::time::Duration;

use super::api_client::ApiAnswer;

/// What to do with a message after an answer from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ack,
    /// Try the `PUT` again after this delay, the message still unacked.
    Retry(Duration),
    /// Reject without requeue: the broker moves it to the dead-letter queue.
    DeadLetter(String),
}

/// Delay before the `PUT` numbered `attempt + 1`: 500 ms, 1 s, 2 s, ... capped at 10 s.
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    let doubled = 500u64.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(doubled.min(10_000))
}

/// The decision after the `attempt`-th `PUT` (1-based) got `answer`.
///
/// `2xx`: ack. `404`: the event does not exist, and never will: dead-letter. `400`/`413`/`422`:
/// the API rejects the request itself, retrying cannot help: dead-letter. Anything else (`5xx`,
/// `401`/`403` from a token being rotated, `429`, no answer): retry with backoff, and
/// dead-letter after `max_attempts`.
pub(crate) fn decide(answer: &ApiAnswer, attempt: u32, max_attempts: u32) -> Outcome {
    match answer {
        ApiAnswer::Status(200..=299) => Outcome::Ack,
        ApiAnswer::Status(404) => {
            Outcome::DeadLetter("the API does not know the event (404)".into())
        }
        ApiAnswer::Status(code @ (400 | 413 | 422)) => {
            Outcome::DeadLetter(format!("the API rejected the update (HTTP {code})"))
        }
        _ if attempt >= max_attempts => Outcome::DeadLetter(format!(
            "gave up after {attempt} attempts; last answer: {answer}"
        )),
        _ => Outcome::Retry(retry_delay(attempt)),
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
    fn transient_errors_retry_until_max_attempts() {
        for answer in [
            ApiAnswer::Status(500),
            ApiAnswer::Status(503),
            ApiAnswer::Status(401),
            ApiAnswer::Unreachable("refused".into()),
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
}
