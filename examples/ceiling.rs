//! The benchmark ceiling: the fastest any server of this design (a `tiny_http` listener feeding
//! a fixed pool of blocking worker threads) can answer on this machine.
//!
//! Same server library and the same number of worker threads as the logger, and nothing else:
//! every request (any method, any path) gets `200` with a fixed JSON body and
//! `Content-Type: application/json`. The request body is read to its end, as the logger does,
//! so a `POST` costs the ceiling what it costs the logger to receive it. `bench/run.sh` runs each
//! throughput case against this server and the logger in turn and reports the ratio.
//!
//! Usage: `ceiling [--threads N] [--port P] [--body-bytes B]`. Defaults: 2 × CPUs threads (the
//! logger's default `HTTP_THREADS`), port 0 (any free port), an 80-byte body. The address is
//! printed on standard error as `listening on http://ADDR`. Runs until killed.

use std::io::Cursor;
use std::sync::Arc;

fn main() {
    let mut threads = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut port = 0u16;
    let mut body_bytes = 80usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let parsed = value
            .parse::<usize>()
            .unwrap_or_else(|_| usage(&flag, &value));
        match flag.as_str() {
            "--threads" => threads = parsed.max(1),
            "--port" => port = u16::try_from(parsed).unwrap_or_else(|_| usage(&flag, &value)),
            "--body-bytes" => body_bytes = parsed,
            _ => usage(&flag, &value),
        }
    }
    let body: Arc<[u8]> = json_body(body_bytes).into();
    let server = match listen(port).and_then(|l| {
        tiny_http::Server::from_listener(l, None).map_err(|e| std::io::Error::other(e.to_string()))
    }) {
        Ok(server) => Arc::new(server),
        Err(e) => {
            eprintln!("ceiling: cannot listen: {e}");
            std::process::exit(1);
        }
    };
    match server.server_addr().to_ip() {
        Some(addr) => eprintln!(
            "ceiling: listening on http://{addr} with {threads} worker threads, {} byte body",
            body.len()
        ),
        None => eprintln!("ceiling: listening on a non-IP address"),
    }
    let content_type = tiny_http::Header::from_bytes("Content-Type", "application/json")
        .unwrap_or_else(|()| unreachable!("a valid header"));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let server = server.clone();
            let body = body.clone();
            let content_type = content_type.clone();
            std::thread::spawn(move || serve(&server, &body, &content_type))
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

/// A loopback listener configured as the logger's (`src/http.rs`): accepted connections inherit
/// `TCP_NODELAY`.
fn listen(port: u16) -> std::io::Result<std::net::TcpListener> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn serve(server: &tiny_http::Server, body: &Arc<[u8]>, content_type: &tiny_http::Header) {
    let mut sink = Vec::new();
    for mut request in server.incoming_requests() {
        sink.clear();
        // A client that breaks off mid-body just gets its answer written to a closed socket.
        let _ = request.as_reader().read_to_end(&mut sink);
        let response = tiny_http::Response::new(
            tiny_http::StatusCode(200),
            vec![content_type.clone()],
            Cursor::new(body.clone()),
            Some(body.len()),
            None,
        );
        let _ = request.respond(response);
    }
}

/// A JSON object of exactly `size` bytes (at least the 10 of `{"pad":""}`), shaped like the
/// logger's small answers.
fn json_body(size: usize) -> Vec<u8> {
    let mut body = br#"{"pad":""#.to_vec();
    let padding = size.saturating_sub(body.len() + 2);
    body.extend(std::iter::repeat_n(b'x', padding));
    body.extend_from_slice(br#""}"#);
    body
}

fn usage(flag: &str, value: &str) -> ! {
    eprintln!(
        "ceiling: bad argument {flag} {value:?}\nusage: ceiling [--threads N] [--port P] [--body-bytes B]"
    );
    std::process::exit(2);
}
