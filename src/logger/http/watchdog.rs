//! Notices that tiny_http's accept loop has died, so that the service exits non-zero and its
//! supervisor restarts it, instead of serving nothing while looking alive.
//!
//! The fork's accept loop survives transient errors and running out of descriptors (it pauses
//! and retries), and a thread it cannot start closes one connection; it ends only on another
//! error, which it hands to `recv`. Two signals cover what remains:
//! - the server's accept watch thread, which receives that error from `recv`, raises the
//!   [`Alarm`] at once;
//! - a watchdog thread connects to the server every [`PROBE_INTERVAL`] and sends a request line
//!   that tiny_http itself rejects with `400` on the connection's thread, so the probe needs a
//!   working accept loop but no free handler: a server busy with slow handlers is not mistaken
//!   for a dead one (at the connection limit the probe gets the `503`, an answer too).
//!   [`FAILED_PROBES`] failures in a row raise the alarm.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shared::shutdown::{Latch, Shutdown};

/// Time between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How long one probe may take (connect, write, first bytes of the answer).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes that must fail in a row before the server counts as dead.
pub const FAILED_PROBES: u32 = 3;

/// A request line without path or version: tiny_http answers `400` without a worker.
const PROBE_REQUEST: &[u8] = b"WATCHDOG-PROBE\r\n\r\n";

/// Raised once, with the first reason, when the server can no longer take connections.
#[derive(Debug, Clone, Default)]
pub struct Alarm(Latch<String>);

impl Alarm {
    pub fn new() -> Alarm {
        Alarm::default()
    }

    /// Raises the alarm; only the first reason is kept.
    pub fn raise(&self, why: impl Into<String>) {
        self.0.set(why.into());
    }

    /// Why the alarm was raised, if it was.
    pub fn reason(&self) -> Option<String> {
        self.0.get()
    }

    /// Waits until raised or `timeout` passed; returns the reason if raised.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<String> {
        self.0.wait_timeout(timeout)
    }
}

/// When and how hard to probe.
#[derive(Debug, Clone, Copy)]
pub struct ProbeConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub failures: u32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            interval: PROBE_INTERVAL,
            timeout: PROBE_TIMEOUT,
            failures: FAILED_PROBES,
        }
    }
}

/// The address a probe connects to: the listening address, with an unspecified IP
/// (`0.0.0.0`, `::`) replaced by loopback.
pub fn probe_addr(listening: SocketAddr) -> SocketAddr {
    let ip = match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listening.port())
}

/// One probe: connects to `addr` and expects the first bytes of an HTTP answer.
pub fn probe(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(PROBE_REQUEST)?;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head)?;
    if &head != b"HTTP/" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the answer is not HTTP",
        ));
    }
    Ok(())
}

/// Starts the watchdog thread. It probes `addr` until `stop` is triggered, and calls
/// `on_failure` once, with the reason, when the alarm is raised (by a probe or by anyone
/// else), then ends.
pub fn spawn(
    addr: SocketAddr,
    config: ProbeConfig,
    alarm: Alarm,
    stop: Shutdown,
    on_failure: Box<dyn FnOnce(&str) + Send>,
) -> io::Result<JoinHandle<()>> {
    let addr = probe_addr(addr);
    std::thread::Builder::new()
        .name("http-watchdog".into())
        .spawn(move || {
            let mut failed = 0;
            loop {
                if let Some(why) = alarm.wait_timeout(config.interval) {
                    if !stop.is_triggered() {
                        log::error!(
                            "the HTTP server no longer accepts connections ({why}); exiting so that the supervisor restarts the service"
                        );
                        on_failure(&why);
                    }
                    return;
                }
                if stop.is_triggered() {
                    return;
                }
                match probe(addr, config.timeout) {
                    Ok(()) => failed = 0,
                    Err(e) => {
                        failed += 1;
                        log::warn!(
                            "watchdog probe {failed} of {} to {addr} failed: {e}",
                            config.failures
                        );
                        if failed >= config.failures {
                            alarm.raise(format!(
                                "{failed} probes in a row to {addr} failed, the last with: {e}"
                            ));
                        }
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Instant;

    fn quick() -> ProbeConfig {
        ProbeConfig {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(200),
            failures: 3,
        }
    }

    #[test]
    fn unspecified_addresses_are_probed_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let v6: SocketAddr = "[::]:80".parse().unwrap();
        let other: SocketAddr = "10.1.2.3:80".parse().unwrap();
        assert_eq!(probe_addr(v4), "127.0.0.1:80".parse().unwrap());
        assert_eq!(probe_addr(v6), "[::1]:80".parse().unwrap());
        assert_eq!(probe_addr(other), other);
    }

    #[test]
    fn alarm_keeps_the_first_reason_and_wakes_waiters() {
        let alarm = Alarm::new();
        assert_eq!(alarm.wait_timeout(Duration::from_millis(10)), None);
        let other = alarm.clone();
        let t = std::thread::spawn(move || other.raise("first"));
        assert_eq!(
            alarm.wait_timeout(Duration::from_secs(10)).as_deref(),
            Some("first")
        );
        t.join().unwrap();
        alarm.raise("second");
        assert_eq!(alarm.reason().as_deref(), Some("first"));
    }

    /// A listener that never calls `accept()`: connections complete in the kernel's backlog
    /// but nobody answers, as after tiny_http's accept thread died with the socket kept open.
    #[test]
    fn a_listener_that_does_not_accept_raises_the_alarm_after_the_failures() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(probe(addr, Duration::from_millis(200)).is_err());
        let (tx, rx) = mpsc::channel();
        let alarm = Alarm::new();
        let started = Instant::now();
        let handle = spawn(
            addr,
            quick(),
            alarm.clone(),
            Shutdown::new(),
            Box::new(move |why| tx.send(why.to_owned()).unwrap()),
        )
        .unwrap();
        let why = rx.recv_timeout(Duration::from_secs(10)).expect("alarm");
        assert!(why.starts_with("3 probes in a row"), "{why}");
        // Three probes, each waiting one interval and its full timeout.
        assert!(started.elapsed() >= Duration::from_millis(3 * 250));
        handle.join().unwrap();
        drop(listener);
    }

    #[test]
    fn a_closed_port_raises_the_alarm() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let handle = spawn(
            addr,
            quick(),
            Alarm::new(),
            Shutdown::new(),
            Box::new(move |why| tx.send(why.to_owned()).unwrap()),
        )
        .unwrap();
        let why = rx.recv_timeout(Duration::from_secs(10)).expect("alarm");
        assert!(why.contains("refused"), "{why}");
        handle.join().unwrap();
    }

    #[test]
    fn a_raised_alarm_is_reported_at_once_and_a_stop_is_silent() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let alarm = Alarm::new();
        let slow = ProbeConfig {
            interval: Duration::from_secs(60),
            ..quick()
        };
        let handle = spawn(
            addr,
            slow,
            alarm.clone(),
            Shutdown::new(),
            Box::new(move |why| tx.send(why.to_owned()).unwrap()),
        )
        .unwrap();
        alarm.raise("accept failed: too many open files");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            "accept failed: too many open files"
        );
        handle.join().unwrap();

        let (tx, rx) = mpsc::channel::<String>();
        let stop = Shutdown::new();
        let alarm = Alarm::new();
        let handle = spawn(
            addr,
            slow,
            alarm.clone(),
            stop.clone(),
            Box::new(move |why| tx.send(why.to_owned()).unwrap()),
        )
        .unwrap();
        stop.trigger();
        alarm.raise("stopping");
        handle.join().unwrap();
        assert!(rx.try_recv().is_err(), "a stop is not a failure");
    }
}
