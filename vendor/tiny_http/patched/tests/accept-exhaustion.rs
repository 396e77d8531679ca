// PATCHED (see PATCHES.md, fix 22): a new file, alone in its test binary, since it uses up
// the process's descriptors.
//! The accept loop survives running out of file descriptors (`EMFILE`): the client waits in
//! the listen queue and is served once descriptors are free again.

extern crate tiny_http;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn take_every_descriptor(held: &mut Vec<File>) {
    loop {
        match File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "{}", e);
                return;
            }
        }
        assert!(held.len() < 2_000_000, "no descriptor limit hit");
    }
}

/// Sends a request on `client` and returns the body of the `200` answer.
fn exchange(client: &mut TcpStream) -> String {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{}", answer);
    answer.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

#[test]
fn out_of_descriptors_the_server_waits_and_then_serves() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_connection_handler(|rq| {
        rq.respond(tiny_http::Response::from_string("served")).unwrap();
    });
    let port = server.server_addr().to_ip().unwrap().port();

    // Every descriptor but one, which the client's socket takes: the server's accept() then
    // has none.
    let mut held = Vec::new();
    take_every_descriptor(&mut held);
    held.pop();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Descriptors that other threads of this process closed meanwhile.
    take_every_descriptor(&mut held);
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // PATCHED (fix 24): accept() failed (EMFILE) and the client waits in the listen queue, or
    // it took the last descriptor, which is all a connection needs: no answer either way until
    // the client asks. (Patch 22 alone answered 503 when it could not duplicate the socket.)
    let mut early = [0u8; 12];
    let e = client.read_exact(&mut early).unwrap_err();
    assert!(e.kind() == std::io::ErrorKind::WouldBlock, "{}", e);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    held.truncate(held.len().saturating_sub(16));
    assert_eq!(exchange(&mut client), "served");
    // Upstream's accept loop was gone by now: no new client was ever answered.
    drop(held);
    let mut next = TcpStream::connect(("127.0.0.1", port)).unwrap();
    next.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(exchange(&mut next), "served");
}
