//! The benchmark driver: the parts of `bench/run.sh` that `wrk` and a shell cannot do.
//!
//! It creates a counted number of events (seeding a store, the end-to-end burst, a paced steady
//! load), waits until every event is `Processed`, computes creation-to-`Processed` latencies
//! from `GET /events`, and creates nothing on RabbitMQ but deletes what a run declared. Each
//! subcommand prints one line of `key=value` pairs on standard output for the script to read;
//! problems go to standard error and a non-zero exit code.
//!
//! ```text
//! bench_driver post URL --count N [--conns C] [--rate R] [--ids FILE]
//! bench_driver wait-processed URL --expect N [--timeout SECS]
//! bench_driver latency URL
//! bench_driver health URL
//! bench_driver size URL
//! bench_driver amqp-check AMQP_URL
//! bench_driver amqp-delete AMQP_URL EXCHANGE QUEUE
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amiquip::{Connection, QueueDeleteOptions};
use event_notification::shared::event::{Event, STATUS_PROCESSED};

/// The description of every event the driver creates; user ids are `u-0` to `u-999`.
const DESCRIPTION: &str = "Your order has shipped";

type Failure = String;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        return usage("no subcommand");
    };
    let (positional, flags) = split_args(rest);
    let result = match (command.as_str(), positional.as_slice()) {
        ("post", [url]) => post(url, &flags),
        ("wait-processed", [url]) => wait_processed(url, &flags),
        ("latency", [url]) => latency(url),
        ("health", [url]) => health(url),
        ("size", [url]) => size(url),
        ("amqp-check", [amqp]) => Connection::insecure_open(&with_timeout(amqp))
            .map(|c| {
                let _ = c.close();
                "broker=reachable".to_owned()
            })
            .map_err(|e| format!("cannot reach RabbitMQ: {e}")),
        ("amqp-delete", [amqp, exchange, queue]) => amqp_delete(amqp, exchange, queue),
        _ => return usage(&format!("bad arguments: {args:?}")),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_driver {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("bench_driver: {why}; see the doc comment of examples/bench_driver.rs");
    ExitCode::from(2)
}

/// Positional arguments, and `--flag value` pairs.
fn split_args(args: &[String]) -> (Vec<String>, HashMap<String, String>) {
    let mut positional = Vec::new();
    let mut flags = HashMap::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.strip_prefix("--") {
            Some(name) => {
                flags.insert(name.to_owned(), iter.next().cloned().unwrap_or_default());
            }
            None => positional.push(arg.clone()),
        }
    }
    (positional, flags)
}

fn flag<T: std::str::FromStr>(
    flags: &HashMap<String, String>,
    name: &str,
    default: Option<T>,
) -> Result<T, Failure> {
    match flags.get(name) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("--{name} {text:?} is not a valid value")),
        None => default.ok_or_else(|| format!("--{name} is required")),
    }
}

fn agent() -> ureq::Agent {
    // No global timeout: with one, ureq resolves the host on a new thread for every request,
    // and the driver shares the CPUs with what it measures.
    let timeout = Some(Duration::from_secs(60));
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(timeout)
        .timeout_per_read(timeout)
        .timeout_per_write(timeout)
        .build()
        .into()
}

/// `GET url`: status, `X-Total-Count` if any, body.
fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, Option<usize>, Vec<u8>), Failure> {
    let response = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    let total = response
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response
        .into_body()
        .with_config()
        .limit(1 << 32)
        .read_to_vec()
        .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    Ok((status, total, body))
}

/// What the `post` threads count together.
#[derive(Default)]
struct Tally {
    next: AtomicUsize,
    created: AtomicUsize,
    retries: AtomicUsize,
    errors: AtomicUsize,
    string_bytes: AtomicUsize,
}

/// Creates `--count` events over `--conns` keep-alive connections, as fast as they are
/// accepted or, with `--rate`, paced at that many per second. A `503` (outbox full) is retried
/// until accepted. With `--ids FILE`, the created ids are written to FILE, one a line.
fn post(url: &str, flags: &HashMap<String, String>) -> Result<String, Failure> {
    let count: usize = flag(flags, "count", None)?;
    let conns: usize = flag(flags, "conns", Some(64))?;
    let rate: f64 = flag(flags, "rate", Some(0.0))?;
    let endpoint = format!("{}/events", url.trim_end_matches('/'));
    let tally = Tally::default();
    let ids = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..conns.max(1) {
            scope.spawn(|| post_worker(&endpoint, count, rate, started, &tally, &ids));
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = flags.get("ids") {
        let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("cannot create {path}: {e}"))?,
        );
        for id in &ids {
            writeln!(file, "{id}").map_err(|e| format!("cannot write {path}: {e}"))?;
        }
        file.flush()
            .map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    let created = tally.created.load(Ordering::Relaxed);
    Ok(format!(
        "created={created} seconds={seconds:.3} rate={:.0} retries={} errors={} string_bytes={}",
        created as f64 / seconds,
        tally.retries.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        tally.string_bytes.load(Ordering::Relaxed),
    ))
}

fn post_worker(
    endpoint: &str,
    count: usize,
    rate: f64,
    started: Instant,
    tally: &Tally,
    ids: &Mutex<Vec<String>>,
) {
    let agent = agent();
    let mut mine = Vec::new();
    loop {
        let i = tally.next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let user_id = format!("u-{}", i % 1000);
        let body = serde_json::json!({"user_id": user_id, "description": DESCRIPTION}).to_string();
        loop {
            let answer = agent
                .post(endpoint)
                .header("Content-Type", "application/json")
                .send(body.as_str());
            let response = match answer {
                Ok(response) => response,
                Err(e) => {
                    eprintln!("POST {endpoint}: {e}");
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim_start_matches("/events/").to_owned());
            // Reading to the end returns the connection to the agent's pool.
            let _ = response.into_body().read_to_vec();
            match (status, location) {
                (200, Some(id)) => {
                    tally.created.fetch_add(1, Ordering::Relaxed);
                    // The strings an event holds once processed: user id, description, status.
                    let strings = user_id.len() + DESCRIPTION.len() + STATUS_PROCESSED.len();
                    tally.string_bytes.fetch_add(strings, Ordering::Relaxed);
                    mine.push(id);
                    break;
                }
                (503, _) => {
                    tally.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
                (status, _) => {
                    eprintln!("POST {endpoint}: HTTP {status}");
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    ids.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
}

/// Waits until the store holds at least `--expect` events and none is `NotProcessed`.
fn wait_processed(url: &str, flags: &HashMap<String, String>) -> Result<String, Failure> {
    let expect: usize = flag(flags, "expect", None)?;
    let timeout: f64 = flag(flags, "timeout", Some(300.0))?;
    let base = url.trim_end_matches('/');
    let agent = agent();
    let started = Instant::now();
    loop {
        let (_, total, _) = get(&agent, &format!("{base}/events?limit=0"))?;
        let (_, waiting, _) = get(
            &agent,
            &format!("{base}/events?status=NotProcessed&limit=0"),
        )?;
        let (total, waiting) = (total.unwrap_or(0), waiting.unwrap_or(usize::MAX));
        let waited = started.elapsed().as_secs_f64();
        if total >= expect && waiting == 0 {
            return Ok(format!("processed=true waited={waited:.3} events={total}"));
        }
        if waited > timeout {
            return Err(format!(
                "after {timeout} s: {total} events stored (expected {expect}), {waiting} not processed"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creation-to-`Processed` latency (`updated_at` − `created_at`) of every stored event, and
/// the throughput from the first creation to the last `Processed`.
fn latency(url: &str) -> Result<String, Failure> {
    let list = format!("{}/events", url.trim_end_matches('/'));
    let (status, _, body) = get(&agent(), &list)?;
    if status != 200 {
        return Err(format!("GET {list}: HTTP {status}"));
    }
    let events: Vec<Event> = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {list}: not a list of events: {e}"))?;
    let processed: Vec<&Event> = events
        .iter()
        .filter(|e| e.status == STATUS_PROCESSED)
        .collect();
    let (Some(first), Some(last)) = (
        processed.iter().map(|e| e.created_at.unix_micros()).min(),
        processed.iter().map(|e| e.updated_at.unix_micros()).max(),
    ) else {
        return Err(format!("no processed event among {}", events.len()));
    };
    let mut latencies: Vec<i128> = processed
        .iter()
        .map(|e| e.updated_at.unix_micros() - e.created_at.unix_micros())
        .collect();
    latencies.sort_unstable();
    let span = (last - first) as f64 / 1e6;
    let ms = |q: f64| percentile(&latencies, q) as f64 / 1e3;
    Ok(format!(
        "events={} processed={} span_s={span:.3} rate={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        events.len(),
        processed.len(),
        processed.len() as f64 / span.max(1e-6),
        ms(0.50),
        ms(0.99),
        ms(1.0),
    ))
}

/// The value below which a fraction `q` of the sorted `values` lie (nearest rank).
fn percentile(sorted: &[i128], q: f64) -> i128 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `/health` as `key=value` pairs.
fn health(url: &str) -> Result<String, Failure> {
    let target = format!("{}/health", url.trim_end_matches('/'));
    let (status, _, body) = get(&agent(), &target)?;
    let health: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET {target}: {e}"))?;
    Ok(format!(
        "status={status} broker={} pending={} events={}",
        health["broker"].as_str().unwrap_or("?"),
        health["pending"],
        health["events"]
    ))
}

/// The size of the body of `GET url`.
fn size(url: &str) -> Result<String, Failure> {
    let (status, total, body) = get(&agent(), url)?;
    Ok(format!(
        "status={status} bytes={} total={}",
        body.len(),
        total.map_or("-".into(), |t| t.to_string())
    ))
}

/// A connect timeout, so that a broker that accepts TCP but never answers cannot hang the run.
fn with_timeout(amqp: &str) -> String {
    let separator = if amqp.contains('?') { '&' } else { '?' };
    format!("{amqp}{separator}connection_timeout=5000")
}

/// Deletes the queues and exchanges a run declared: `QUEUE`, `QUEUE.dead`, `EXCHANGE` and
/// `EXCHANGE.dlx` (the topology of `openapi/API.md`). Refuses the service's default names, which belong
/// to whatever else uses this broker.
fn amqp_delete(amqp: &str, exchange: &str, queue: &str) -> Result<String, Failure> {
    if ["events", "notifications"].contains(&exchange) || queue == "notifications" {
        return Err(format!(
            "refusing to delete the default names ({exchange}, {queue})"
        ));
    }
    let mut connection = Connection::insecure_open(&with_timeout(amqp))
        .map_err(|e| format!("cannot reach RabbitMQ: {e}"))?;
    let mut dropped = 0;
    // A failed delete closes its channel, so each gets a channel of its own.
    for queue in [queue.to_owned(), format!("{queue}.dead")] {
        let channel = connection.open_channel(None).map_err(|e| e.to_string())?;
        match channel.queue_delete(queue.as_str(), QueueDeleteOptions::default()) {
            Ok(messages) => {
                dropped += messages;
                let _ = channel.close();
            }
            Err(e) => eprintln!("could not delete queue {queue}: {e}"),
        }
    }
    for exchange in [exchange.to_owned(), format!("{exchange}.dlx")] {
        let channel = connection.open_channel(None).map_err(|e| e.to_string())?;
        match channel.exchange_delete(exchange.as_str(), false) {
            Ok(()) => {
                let _ = channel.close();
            }
            Err(e) => eprintln!("could not delete exchange {exchange}: {e}"),
        }
    }
    let _ = connection.close();
    Ok(format!("deleted=true messages_dropped={dropped}"))
}
