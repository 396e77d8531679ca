//! The benchmark ceiling: the fastest a server built like the logger can answer on this machine,
//! the reference `bench/run.sh` and `bench/builds.sh` measure the logger against.
//!
//! It is built like the logger's HTTP server (`src/logger/http/server.rs`) and does nothing else:
//! the same `tiny_http` fork and listener settings, one thread per connection (the fork's
//! connection handler, 512 KiB stacks), and each request's handler holding one of `--threads`
//! permits while it runs. The body is read before the permit is taken and the answer written
//! after it is given back, as in the logger. Every request (any method, any path) gets `200`
//! with a fixed JSON body and `Content-Type: application/json`; the request body is read to its
//! end, so a `POST` costs the ceiling what it costs the logger to receive it.
//!
//! `--queue` selects the design the logger had before it ran a thread per connection:
//! connections feed tiny_http's queue, which a fixed pool of `--threads` workers empties. It
//! bounds the per-connection logger too loosely (the logger measured above it) and is kept for
//! comparison.
//!
//! Usage: `ceiling [--threads N] [--port P] [--body-bytes B] [--queue]`. Defaults: 2 × CPUs
//! permits or workers (the logger's default `HTTP_THREADS`), port 0 (any free port), an 80-byte
//! body. The address is printed on standard error as `listening on http://ADDR`. Runs until
//! killed.

use std::io::Cursor;
use std::sync::{Arc, Condvar, Mutex};

/// Stack of each connection's thread, as in the logger.
const CONNECTION_STACK_BYTES: usize = 512 * 1024;

fn main() {
    let mut threads = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut port = 0u16;
    let mut body_bytes = 80usize;
    let mut queue = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--queue" {
            queue = true;
            continue;
        }
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
    let server = match listen(port).and_then(|l| {
        tiny_http::Server::from_listener(l, None).map_err(|e| std::io::Error::other(e.to_string()))
    }) {
        Ok(server) => Arc::new(server),
        Err(e) => {
            eprintln!("ceiling: cannot listen: {e}");
            std::process::exit(1);
        }
    };
    let answer = Arc::new(Answer {
        body: json_body(body_bytes).into(),
        content_type: tiny_http::Header::from_bytes("Content-Type", "application/json")
            .unwrap_or_else(|()| unreachable!("a valid header")),
    });
    let permits = Arc::new(Permits::new(threads));
    let design = if queue {
        format!("a queue and {threads} worker threads")
    } else {
        // Set before the address is printed, so that clients who wait for it never meet the
        // queue (where requests go until a handler is set).
        let (answer, permits) = (answer.clone(), permits.clone());
        server.set_connection_stack_size(CONNECTION_STACK_BYTES);
        server.set_connection_handler(move |request| answer.serve(request, Some(&permits)));
        format!("a thread per connection and {threads} handler permits")
    };
    match server.server_addr().to_ip() {
        Some(addr) => eprintln!(
            "ceiling: listening on http://{addr} with {design}, {} byte body",
            answer.body.len()
        ),
        None => eprintln!("ceiling: listening on a non-IP address"),
    }
    if queue {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (server, answer) = (server.clone(), answer.clone());
                std::thread::spawn(move || {
                    for request in server.incoming_requests() {
                        answer.serve(request, None);
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.join();
        }
    } else {
        // With a connection handler, the queue only reports a dead accept loop (and holds the
        // requests of connections accepted before the handler was set, if any).
        loop {
            match server.recv() {
                Ok(request) => answer.serve(request, Some(&permits)),
                Err(e) => {
                    eprintln!("ceiling: tiny_http's accept loop stopped: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}

/// A loopback listener configured as the logger's (`src/logger/http/server.rs`): accepted
/// connections inherit `TCP_NODELAY`.
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

/// The fixed answer.
struct Answer {
    body: Arc<[u8]>,
    content_type: tiny_http::Header,
}

impl Answer {
    /// Reads the body, builds the answer holding a permit (if given), writes it without.
    fn serve(&self, mut request: tiny_http::Request, permits: Option<&Permits>) {
        // A client that breaks off mid-body just gets its answer written to a closed socket.
        let _ = request.as_reader().read_to_end(&mut Vec::new());
        let response = {
            let _permit = permits.map(Permits::acquire);
            tiny_http::Response::new(
                tiny_http::StatusCode(200),
                vec![self.content_type.clone()],
                Cursor::new(self.body.clone()),
                Some(self.body.len()),
                None,
            )
        };
        let _ = request.respond(response);
    }
}

/// A counting semaphore, as the logger's handler permits (`src/logger/http/admission.rs`).
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One permit; dropping it frees it and wakes one waiter.
struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(n: usize) -> Permits {
        Permits {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
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
        "ceiling: bad argument {flag} {value:?}\nusage: ceiling [--threads N] [--port P] [--body-bytes B] [--queue]"
    );
    std::process::exit(2);
}
