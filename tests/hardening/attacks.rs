//! Resource attacks on the real `event-logger` binary, a child process with short timeouts:
//! during each, a fresh client's `GET /ping` answers within 1 s and the process stays under
//! 512 MB; after it, its threads, descriptors and memory come back near their baseline
//! (read from `/proc/PID/status` and `/proc/PID/fd`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::common::process::Service;
use crate::common::wait::wait_until;
use crate::heavy;

/// The idle timeout the logger runs with here (`HTTP_IDLE_TIMEOUT_SECS`).
const IDLE_SECS: u64 = 2;

/// How far above its baseline the process's memory may stay once an attack is over: it gives
/// freed memory back (`http::memory`), so what is left is the allocator's working set.
const RSS_SLACK_KB: u64 = 32 * 1024;

/// A process's figures from `/proc`.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kb: u64,
    threads: u64,
    fds: usize,
}

struct Target {
    service: Service,
    addr: SocketAddr,
    idle_secs: u64,
}

impl Target {
    /// The logger with `nofile` as its open-file limit (soft and hard).
    fn start(nofile: u64) -> Target {
        Target::start_idle(nofile, IDLE_SECS)
    }

    /// [`Target::start`], with connections timing out after `idle_secs`.
    fn start_idle(nofile: u64, idle_secs: u64) -> Target {
        let idle = idle_secs.to_string();
        let all = vec![
            ("PORT", "0"),
            ("LOG_LEVEL", "warn"),
            ("HTTP_THREADS", "4"),
            ("HTTP_IDLE_TIMEOUT_SECS", idle.as_str()),
        ];
        let service = Service::start_with("event-logger", &[], &all, |command| {
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                command
                    .pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, nofile, nofile));
            }
        });
        // LOG_LEVEL=warn hides the "listening on" line: find the port from /proc instead.
        let addr = listening_port(service.pid());
        Target {
            service,
            addr,
            idle_secs,
        }
    }

    fn usage(&self) -> Usage {
        let pid = self.service.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        Usage {
            rss_kb: field("VmRSS:"),
            threads: field("Threads:"),
            fds,
        }
    }

    /// A fresh client's `GET /ping`, with its answer's status line, within 1 s.
    fn ping(&self) -> Duration {
        self.try_ping().unwrap_or_else(|e| panic!("GET /ping: {e}"))
    }

    fn try_ping(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))
            .map_err(|e| format!("connect within 1 s: {e}"))?;
        let exchange = |stream: &mut TcpStream| -> std::io::Result<[u8; 12]> {
            stream.set_read_timeout(Some(Duration::from_secs(1)))?;
            stream.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head)?;
            Ok(head)
        };
        let head = exchange(&mut stream).map_err(|e| format!("answered within 1 s: {e}"))?;
        if &head != b"HTTP/1.1 200" {
            return Err(format!("answered {:?}", String::from_utf8_lossy(&head)));
        }
        Ok(started.elapsed())
    }

    /// Pings `times` times during an attack, checking memory each time; the median latency.
    fn ping_during(&self, times: usize) -> Duration {
        let mut latencies: Vec<Duration> = (0..times)
            .map(|_| {
                let latency = self.ping();
                let usage = self.usage();
                assert!(usage.rss_kb < 512 * 1024, "{usage:?}");
                std::thread::sleep(Duration::from_millis(50));
                latency
            })
            .collect();
        latencies.sort();
        latencies[times / 2]
    }

    /// Waits (within the idle timeout and the pool's 5 s for idle threads) for threads,
    /// descriptors and memory to come back near `baseline`.
    fn recovers_to(&self, baseline: Usage, what: &str) -> Usage {
        let within = Duration::from_secs(self.idle_secs * 3 + 10);
        let near = |u: Usage| {
            u.threads <= baseline.threads + 8
                && u.fds <= baseline.fds + 8
                && u.rss_kb <= baseline.rss_kb + RSS_SLACK_KB
        };
        let mut last = self.usage();
        let ok = wait_until(within, || {
            last = self.usage();
            near(last)
        });
        assert!(
            ok,
            "{what}: after {within:?}, {last:?}; baseline {baseline:?}"
        );
        // What it settles at, for the figures: the heap is trimmed a moment after the threads
        // end (`http::memory`). It must stay near.
        std::thread::sleep(Duration::from_secs(2));
        let settled = self.usage();
        assert!(
            near(settled),
            "{what}: settled at {settled:?}; baseline {baseline:?}"
        );
        settled
    }
}

/// The port the process `pid` listens on, from /proc/net/tcp (its socket inodes).
fn listening_port(pid: u32) -> SocketAddr {
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = listening_port_now(pid);
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("process {pid} listens on no TCP port"))
}

fn listening_port_now(pid: u32) -> Option<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // state 0A: LISTEN
        if cols.get(3) != Some(&"0A") || !inodes.iter().any(|i| Some(&i.as_str()) == cols.get(9)) {
            return None;
        }
        let port = u16::from_str_radix(cols.get(1)?.split(':').nth(1)?, 16).ok()?;
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    })
}

/// Raises this process's open-file limit to its hard limit, and returns that: the most a
/// child may get without privilege.
fn raise_own_fd_limit() -> u64 {
    event_notification::logger::limits::raise_fd_limit()
        .expect("raise the open-file limit")
        .hard
}

fn open(addr: SocketAddr, count: usize, first_bytes: &[u8]) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            if !first_bytes.is_empty() {
                stream.write_all(first_bytes).expect("send");
            }
            stream
        })
        .collect()
}

/// Idle connections the test opens: the issue's 10,000, unless the hard open-file limit
/// (each connection takes one descriptor in the logger, one here) cannot hold them: then what
/// the logger's default `MAX_CONNECTIONS` allows, less room for the pings.
fn idle_connections(hard: u64) -> usize {
    let logger_max = event_notification::logger::limits::default_max_connections();
    let fit = (hard.min(1 << 20) as usize).min(logger_max.saturating_sub(64));
    fit.min(10_000)
}

#[test]
fn ten_thousand_idle_connections() {
    let _guard = heavy();
    let hard = raise_own_fd_limit();
    let count = idle_connections(hard);
    if hard >= 10_400 {
        // Room for 10,000 in both processes: all of them, not the half it used to be.
        assert_eq!(count, 10_000, "hard open-file limit {hard}");
    }
    let target = Target::start_idle(hard, 30);
    let baseline = target.usage();
    let idle = open(target.addr, count, b"");
    // Each accepted connection holds one descriptor of the logger (the fork's patch 24; it
    // was two, the socket and its duplicate).
    let accepted = wait_until(Duration::from_secs(60), || {
        target.usage().fds >= baseline.fds + count
    });
    assert!(accepted, "{:?}: not all {count} accepted", target.usage());
    let median = target.ping_during(10);
    let during = target.usage();
    let per_connection = (during.fds - baseline.fds) as f64 / count as f64;
    assert!(
        (0.99..1.01).contains(&per_connection),
        "{per_connection:.3} descriptors per connection: {during:?}, baseline {baseline:?}"
    );
    drop(idle);
    let after = target.recovers_to(baseline, "idle connections");
    println!(
        "{count} idle connections (hard open-file limit {hard}): /ping median {:.1} ms; {per_connection:.3} descriptors per connection; {during:?} during, {after:?} after, baseline {baseline:?}",
        median.as_secs_f64() * 1e3
    );
}

#[test]
fn connections_beyond_the_open_file_limit() {
    let _guard = heavy();
    let target = Target::start(256);
    let baseline = target.usage();
    // The default MAX_CONNECTIONS under 256 descriptors is 192: the rest get 503 at once.
    let mut many = open(target.addr, 400, b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n");
    let last = many.last_mut().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = last.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    drop(many);
    // Past the limit, the first of a new round may still be refused until the idle ones close.
    assert!(
        wait_until(Duration::from_secs(IDLE_SECS * 3), || {
            target.try_ping().is_ok()
        }),
        "GET /ping not served after the connections closed"
    );
    target.recovers_to(baseline, "connections beyond the open-file limit");
    assert!(
        target.service.stderr.text().is_empty()
            || !target.service.stderr.text().contains("exiting"),
        "{}",
        target.service.stderr.text()
    );
}

#[test]
fn slowloris_heads_and_bodies() {
    let _guard = heavy();
    let hard = raise_own_fd_limit();
    let target = Target::start(hard);
    let baseline = target.usage();
    let heads = open(
        target.addr,
        1_000,
        b"GET /ping HTTP/1.1\r\nHost: t\r\nX-A: ",
    );
    let small = open(
        target.addr,
        500,
        b"POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"u",
    );
    let large = open(
        target.addr,
        500,
        b"POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\n{\"u",
    );
    let median = target.ping_during(10);
    let during = target.usage();
    // Every one of them is cut off by the server (head or body deadline), without our help.
    let after = target.recovers_to(baseline, "slowloris");
    drop((heads, small, large));
    println!(
        "1,000 slowloris heads and 1,000 bodies: /ping median {:.1} ms; {during:?} during, {after:?} after, baseline {baseline:?}",
        median.as_secs_f64() * 1e3
    );
}

#[test]
fn one_connection_pipelining_without_reading() {
    let _guard = heavy();
    let target = Target::start(4096);
    let baseline = target.usage();
    let addr = target.addr;
    // 64 MB of GET /ping, far more than the socket buffers hold; the writer blocks once they
    // are full, which is what the server does to a client that does not read.
    const BYTES: usize = 64 << 20;
    let flood = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(IDLE_SECS * 4)))
            .unwrap();
        let request = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";
        let batch: Vec<u8> = request.repeat(64 * 1024 / request.len());
        let mut sent = 0;
        while sent < BYTES {
            match stream.write(&batch) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let median = target.ping_during(10);
    let during = target.usage();
    assert!(
        during.rss_kb < baseline.rss_kb + 64 * 1024,
        "{during:?}, baseline {baseline:?}"
    );
    let sent = flood.join().expect("flood thread");
    let after = target.recovers_to(baseline, "pipelining without reading");
    println!(
        "one connection pipelining {} MB without reading (server cut it off after {} KB): /ping median {:.1} ms; {during:?} during, {after:?} after, baseline {baseline:?}",
        BYTES >> 20,
        sent >> 10,
        median.as_secs_f64() * 1e3
    );
}

/// Stores `count` events through one connection, pipelined, and reads the answers.
fn store_events(addr: SocketAddr, count: usize) {
    store_events_saying(addr, count, "an event that makes the list long");
}

/// [`store_events`], each event with this description.
fn store_events_saying(addr: SocketAddr, count: usize, description: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = format!(r#"{{"user_id":"bulk","description":"{description}"}}"#);
    let one = format!(
        "POST /events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let writer = {
        let mut stream = stream.try_clone().expect("clone");
        let mut raw = one.repeat(count).into_bytes();
        raw.extend_from_slice(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        std::thread::spawn(move || stream.write_all(&raw))
    };
    let mut answers = String::new();
    stream.read_to_string(&mut answers).expect("answers");
    writer.join().expect("writer").expect("sent");
    assert_eq!(
        answers.matches("Location: /events/").count(),
        count,
        "{}",
        &answers[..answers.len().min(600)]
    );
}

#[test]
fn clients_that_read_large_answers_slowly_or_never() {
    let _guard = heavy();
    let target = Target::start(4096);
    store_events(target.addr, 3_000);
    let baseline = target.usage();
    let list = b"GET /events?limit=100000 HTTP/1.1\r\nHost: t\r\n\r\n";
    // One connection with 30 pipelined lists, never read.
    let never: Vec<TcpStream> = open(target.addr, 1, &list.repeat(30));
    // 4 slow readers, as many as there are handler permits: 2 KB now and then.
    let slow: Vec<_> = open(target.addr, 4, list)
        .into_iter()
        .map(|mut stream| {
            std::thread::spawn(move || {
                let mut chunk = [0u8; 2048];
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(IDLE_SECS * 3) {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => std::thread::sleep(Duration::from_millis(500)),
                    }
                }
            })
        })
        .collect();
    let median = target.ping_during(10);
    let during = target.usage();
    for reader in slow {
        reader.join().expect("slow reader");
    }
    let after = target.recovers_to(baseline, "slow and absent readers");
    drop(never);
    target.ping();
    println!(
        "30 pipelined GET /events (3,000 events) never read + 4 slow readers: /ping median {:.1} ms; {during:?} during, {after:?} after, baseline {baseline:?}",
        median.as_secs_f64() * 1e3
    );
}

/// The answer of `GET /events` the large-answer attacks ask for: about 10 MB.
const LARGE_ANSWER_BYTES: usize = 10 << 20;

/// Stores events until `GET /events` answers about [`LARGE_ANSWER_BYTES`]; returns its size.
fn store_a_ten_megabyte_list(addr: SocketAddr) -> usize {
    let description = "x".repeat(1_000);
    // Each event's JSON is its description plus fewer than 250 bytes.
    store_events_saying(addr, LARGE_ANSWER_BYTES / 1_250, &description);
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the list");
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{:?}", &answer[..40]);
    assert!(
        answer.len() > LARGE_ANSWER_BYTES * 9 / 10,
        "{}",
        answer.len()
    );
    answer.len()
}

/// The status of each connection's answer (its first 12 bytes; not the rest), all within
/// a minute: large answers are built a few at a time.
fn statuses(streams: &mut [TcpStream]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    streams
        .iter_mut()
        .map(|stream| {
            let left = deadline.saturating_duration_since(Instant::now());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut head = [0u8; 12];
            match stream.read_exact(&mut head) {
                Ok(()) => String::from_utf8_lossy(&head[9..]).into_owned(),
                Err(e) => format!("no answer: {e}"),
            }
        })
        .collect()
}

/// Asserts that every connection was answered `200` (the answer's first bytes, the rest in
/// the socket buffers or unsent) or `503` (the answer budget was full); returns the counts.
fn answered_or_refused(streams: &mut [TcpStream]) -> (usize, usize) {
    let statuses = statuses(streams);
    let ok = statuses.iter().filter(|s| *s == "200").count();
    let busy = statuses.iter().filter(|s| *s == "503").count();
    assert_eq!(ok + busy, streams.len(), "{statuses:?}");
    assert!(ok >= 1, "{statuses:?}");
    (ok, busy)
}

#[test]
fn a_thousand_clients_that_never_read_a_ten_megabyte_answer() {
    let _guard = heavy();
    let hard = raise_own_fd_limit();
    let target = Target::start(hard);
    let answer_bytes = store_a_ten_megabyte_list(target.addr);
    let baseline = target.usage();
    let mut never = open(
        target.addr,
        1_000,
        b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let median = target.ping_during(10);
    let during = target.usage();
    let (ok, busy) = answered_or_refused(&mut never);
    drop(never);
    let after = target.recovers_to(baseline, "never-read large answers");
    println!(
        "1,000 clients never reading a {} MB answer ({ok} answered 200, {busy} 503): /ping median {:.1} ms; {during:?} during, {after:?} after, baseline {baseline:?}",
        answer_bytes >> 20,
        median.as_secs_f64() * 1e3
    );
}

#[test]
fn a_hundred_clients_that_read_a_ten_megabyte_answer_at_one_kilobyte_a_second() {
    let _guard = heavy();
    let target = Target::start(4096);
    let answer_bytes = store_a_ten_megabyte_list(target.addr);
    let baseline = target.usage();
    let mut readers = open(target.addr, 100, b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
    let (ok, busy) = answered_or_refused(&mut readers);
    let reading = std::thread::spawn(move || {
        let started = Instant::now();
        let mut chunk = [0u8; 1024];
        while started.elapsed() < Duration::from_secs(IDLE_SECS * 3) {
            for stream in &mut readers {
                let _ = stream.read(&mut chunk);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let median = target.ping_during(10);
    let during = target.usage();
    reading.join().expect("readers");
    let after = target.recovers_to(baseline, "slow readers of large answers");
    println!(
        "100 clients reading a {} MB answer at 1 KB/s ({ok} answered 200, {busy} 503): /ping median {:.1} ms; {during:?} during, {after:?} after, baseline {baseline:?}",
        answer_bytes >> 20,
        median.as_secs_f64() * 1e3
    );
}
