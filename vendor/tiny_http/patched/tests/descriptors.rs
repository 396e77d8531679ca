// PATCHED (see PATCHES.md, fix 24): a new file, alone in its test binary, since it counts the
// descriptors of its process.
//! A connection costs the server one descriptor: its reading and writing halves share the
//! socket (upstream duplicated it, two descriptors per connection).

extern crate tiny_http;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Sends a keep-alive request on `client` and reads its whole answer (body "served").
fn exchange(client: &mut TcpStream) {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"served") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[cfg(target_os = "linux")]
#[test]
fn an_open_connection_costs_the_server_one_descriptor() {
    const CONNECTIONS: usize = 200;
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_connection_handler(|rq| {
        rq.respond(tiny_http::Response::from_string("served"))
            .unwrap();
    });
    let port = server.server_addr().to_ip().unwrap().port();
    let before = open_descriptors();

    let mut clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            exchange(&mut client);
            client
        })
        .collect();
    assert_eq!(server.num_connections(), CONNECTIONS);
    // Each connection: the client's socket and the server's one (upstream: and its duplicate).
    let during = open_descriptors() - before;
    assert!(
        during <= 2 * CONNECTIONS + 8,
        "{} descriptors for {} connections",
        during,
        CONNECTIONS
    );
    // The connections still work.
    for client in clients.iter_mut().take(10) {
        exchange(client);
    }

    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.num_connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.num_connections(), 0);
    let after = open_descriptors();
    assert!(
        after <= before + 8,
        "{} descriptors before, {} after",
        before,
        after
    );
}
