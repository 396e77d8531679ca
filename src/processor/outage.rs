//! The API's availability as all consumer threads see it together: while it is unavailable or
//! refuses the token, consumption pauses; the log gets one line when such a pause starts or
//! changes kind, a reminder every [`REMINDER_PERIOD`] while it lasts and one line when it ends,
//! however many threads and requests run into it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::api_client::ApiAnswer;
use super::decide::Pause;
use crate::shared::amqp::REMINDER_PERIOD;

/// A line to log, at its level.
pub(crate) type Line = (log::Level, String);

/// Shared by the consumer threads of one processor.
pub(crate) struct Outage {
    /// The API's URL as logs may show it.
    api: String,
    /// Whether `current` is set: while the API answers, no lock is taken.
    down: AtomicBool,
    current: Mutex<Option<Down>>,
}

#[derive(Debug, Clone, Copy)]
struct Down {
    pause: Pause,
    since: Instant,
    logged: Instant,
}

impl Outage {
    pub(crate) fn new(api: String) -> Outage {
        Outage {
            api,
            down: AtomicBool::new(false),
            current: Mutex::new(None),
        }
    }

    /// A request could not be answered for `pause` (`answer` says how); the line to log, if
    /// this starts or changes the pause or a reminder is due.
    pub(crate) fn paused(&self, pause: Pause, answer: &ApiAnswer, now: Instant) -> Option<Line> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.down.store(true, Ordering::Release);
        match current.as_mut() {
            Some(down) if down.pause == pause => {
                if now.duration_since(down.logged) < REMINDER_PERIOD {
                    return None;
                }
                down.logged = now;
                let (level, line) = self.describe(pause, answer);
                let lasted = now.duration_since(down.since).as_secs();
                Some((level, format!("still paused after {lasted} s: {line}")))
            }
            _ => {
                let since = current.map_or(now, |down| down.since);
                *current = Some(Down {
                    pause,
                    since,
                    logged: now,
                });
                Some(self.describe(pause, answer))
            }
        }
    }

    /// The API answered a request (anything that is no pause): the line to log if that ends a
    /// pause.
    pub(crate) fn answered(&self, now: Instant) -> Option<Line> {
        if !self.down.load(Ordering::Acquire) {
            return None;
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.down.store(false, Ordering::Release);
        let down = current.take()?;
        let lasted = now.duration_since(down.since).as_secs_f64();
        Some((
            log::Level::Info,
            format!(
                "API at {} answers again after {lasted:.1} s; consumption resumed",
                self.api
            ),
        ))
    }

    fn describe(&self, pause: Pause, answer: &ApiAnswer) -> Line {
        let api = &self.api;
        match pause {
            Pause::Unavailable => (
                log::Level::Warn,
                format!(
                    "API at {api} unavailable ({answer}): consumption paused, messages held \
                     unacknowledged without spending attempts; retrying with backoff"
                ),
            ),
            Pause::Refused(code) => (
                log::Level::Error,
                format!(
                    "API at {api} refused the processor's token (HTTP {code}): set API_TOKEN to \
                     the logger's API_TOKEN (or unset both); consumption paused, messages held \
                     unacknowledged (none is dead-lettered); retrying with backoff"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn refused() -> ApiAnswer {
        ApiAnswer::Unreachable("connection refused".into())
    }

    #[test]
    fn one_line_per_state_change_and_a_reminder_a_minute() {
        let outage = Outage::new("http://api".into());
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(outage.answered(t0), None, "nothing to end");

        let (level, line) = outage.paused(Pause::Unavailable, &refused(), t0).unwrap();
        assert_eq!(level, log::Level::Warn);
        assert!(line.contains("http://api unavailable (unreachable: connection refused)"));
        // Other threads and later attempts of the same outage: silent until the reminder.
        assert_eq!(outage.paused(Pause::Unavailable, &refused(), at(1)), None);
        let busy = ApiAnswer::Status(503);
        assert_eq!(outage.paused(Pause::Unavailable, &busy, at(59)), None);
        let (level, line) = outage.paused(Pause::Unavailable, &busy, at(61)).unwrap();
        assert_eq!(level, log::Level::Warn);
        assert!(line.starts_with("still paused after 61 s"), "{line}");
        assert_eq!(outage.paused(Pause::Unavailable, &busy, at(62)), None);

        // Another kind of pause is a change: logged at once, the outage's start kept.
        let (level, line) = outage
            .paused(Pause::Refused(401), &ApiAnswer::Status(401), at(70))
            .unwrap();
        assert_eq!(level, log::Level::Error);
        assert!(
            line.contains("HTTP 401") && line.contains("API_TOKEN"),
            "{line}"
        );

        let (level, line) = outage.answered(at(80)).unwrap();
        assert_eq!(level, log::Level::Info);
        assert!(line.contains("answers again after 80.0 s"), "{line}");
        assert_eq!(outage.answered(at(81)), None, "logged once");
        // A new outage is logged again.
        assert!(outage.paused(Pause::Unavailable, &busy, at(90)).is_some());
    }
}
