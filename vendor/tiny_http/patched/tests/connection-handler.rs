// PATCHED (see PATCHES.md, fix 18): a new file.
//! `Server::set_connection_handler`: requests run on their connection's thread, one at a time
//! and in order, and the next request of a connection is read only once the previous one is
//! answered.

extern crate tiny_http;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

fn connect(server: &tiny_http::Server) -> TcpStream {
    let port = server.server_addr().to_ip().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
}

#[test]
fn pipelined_requests_run_one_at_a_time_in_order() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (running2, seen2) = (running.clone(), seen.clone());
    server.set_connection_handler(move |rq| {
        assert_eq!(running2.fetch_add(1, Ordering::SeqCst), 0, "two at once");
        // Slow enough that a concurrent or out-of-order request would show.
        thread::sleep(Duration::from_millis(20));
        seen2.lock().unwrap().push(rq.url().to_owned());
        running2.fetch_sub(1, Ordering::SeqCst);
        let body = rq.url().to_owned();
        rq.respond(tiny_http::Response::from_string(body)).unwrap();
    });
    let mut client = connect(&server);
    let mut raw = String::new();
    for i in 0..10 {
        raw.push_str(&format!("POST /{} HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx", i));
    }
    raw.push_str("GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    client.write_all(raw.as_bytes()).unwrap();
    let mut answers = String::new();
    client.read_to_string(&mut answers).unwrap();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("/{}", i))
        .chain(Some("/last".to_owned()))
        .collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    let bodies: Vec<&str> = answers
        .split("HTTP/1.1 200 OK")
        .skip(1)
        .map(|a| a.rsplit("\r\n\r\n").next().unwrap())
        .collect();
    assert_eq!(bodies, expected);
}

#[test]
fn the_next_request_is_not_read_before_the_answer() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let held_tx = Mutex::new(held_tx);
    server.set_connection_handler(move |rq| {
        // The first request is kept, unanswered, by the test: the second must not show up.
        held_tx.lock().unwrap().send(rq).unwrap();
    });
    let mut client = connect(&server);
    client
        .write_all(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    let first = held_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first.url(), "/1");
    assert!(held_rx.recv_timeout(Duration::from_millis(300)).is_err());
    first.respond(tiny_http::Response::from_string("one")).unwrap();
    let second = held_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(second.url(), "/2");
    second.respond(tiny_http::Response::from_string("two")).unwrap();
    let mut answers = String::new();
    client.read_to_string(&mut answers).unwrap();
    assert!(answers.ends_with("two"), "{}", answers);
}

#[test]
fn connections_run_in_parallel() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    server.set_connection_handler(move |rq| {
        // Both handlers must be running at once to get past this.
        barrier.wait();
        rq.respond(tiny_http::Response::from_string("ok")).unwrap();
    });
    let mut clients: Vec<TcpStream> = (0..2).map(|_| connect(&server)).collect();
    for client in &mut clients {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    for client in &mut clients {
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(answer.ends_with("ok"), "{}", answer);
    }
}

/// A body that gives `left` bytes, then fails (as a body reader with a deadline does).
struct FailingBody {
    left: usize,
}

impl Read for FailingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "too slow"));
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(b'a');
        self.left -= n;
        Ok(n)
    }
}

// PATCHED (fix 19)
#[test]
fn an_answer_not_written_whole_closes_the_connection() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let served2 = served.clone();
    server.set_connection_handler(move |rq| {
        served2.fetch_add(1, Ordering::SeqCst);
        let body = FailingBody { left: 10 };
        let response = tiny_http::Response::new(
            tiny_http::StatusCode(200),
            Vec::new(),
            body,
            Some(100),
            None,
        );
        assert!(rq.respond(response).is_err());
    });
    let mut client = connect(&server);
    client
        .write_all(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    // The server closes after the cut answer (read_to_end ends), and never reads /2.
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{}", answer);
    assert!(answer.ends_with("\r\n\r\naaaaaaaaaa"), "{}", answer);
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

/// The size of the mapping (from /proc/self/maps) that holds `address`.
#[cfg(target_os = "linux")]
fn mapping_size(address: usize) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| {
            let range = line.split(' ').next()?;
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start..end).contains(&address).then(|| end - start)
        })
        .next()
        .unwrap()
}

// PATCHED (fix 20)
#[cfg(target_os = "linux")]
#[test]
fn connection_threads_get_the_stack_size_set() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_connection_stack_size(256 * 1024);
    // Eight handlers at once: more than the threads the pool starts with, which may have
    // Rust's default stack (2 MiB), so some run on threads started with the setting.
    let barrier = std::sync::Barrier::new(8);
    server.set_connection_handler(move |rq| {
        barrier.wait();
        let local = 0u8;
        let size = mapping_size(&local as *const u8 as usize);
        rq.respond(tiny_http::Response::from_string(size.to_string()))
            .unwrap();
    });
    let mut clients: Vec<TcpStream> = (0..8).map(|_| connect(&server)).collect();
    for client in &mut clients {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    let sizes: Vec<usize> = clients
        .iter_mut()
        .map(|client| {
            let mut answer = String::new();
            client.read_to_string(&mut answer).unwrap();
            answer.rsplit("\r\n\r\n").next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(sizes.iter().any(|&s| s <= 512 * 1024), "{:?}", sizes);
    assert!(sizes.iter().all(|&s| s >= 128 * 1024), "{:?}", sizes);
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out: {}", what);
        thread::sleep(Duration::from_millis(10));
    }
}

// PATCHED (fix 21)
#[test]
fn beyond_the_connection_limit_a_quick_503_and_close() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_max_connections(2);
    server.set_connection_handler(|rq| {
        rq.respond(tiny_http::Response::from_string("ok")).unwrap();
    });
    let first = connect(&server);
    let _second = connect(&server);
    wait_for("two open", || server.num_connections() == 2);

    let mut third = connect(&server);
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{}", answer);
    assert!(answer.contains("Connection: close\r\n"), "{}", answer);
    assert!(answer.contains("Retry-After: 1\r\n"), "{}", answer);
    assert_eq!(server.num_connections(), 2);

    drop(first);
    wait_for("one closed", || server.num_connections() == 1);
    let mut fourth = connect(&server);
    fourth
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    fourth.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{}", answer);
}

// PATCHED (fix 23)
#[test]
fn a_small_body_is_read_by_the_handler_not_before_it() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let (called_tx, called_rx) = std::sync::mpsc::channel();
    let called_tx = Mutex::new(called_tx);
    server.set_connection_handler(move |mut rq| {
        called_tx.lock().unwrap().send(()).unwrap();
        let mut body = String::new();
        rq.as_reader().read_to_string(&mut body).unwrap();
        rq.respond(tiny_http::Response::from_string(body)).unwrap();
    });
    let mut client = connect(&server);
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhello")
        .unwrap();
    // Upstream handed the request out only once its 10 bytes had all come.
    called_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the handler gets the request before its body is complete");
    client.write_all(b"world").unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with("\r\n\r\nhelloworld"), "{}", answer);
}
