//! The `DATA_DIR` benchmark (bench/README.md, "Durability"): the real `event-logger` binary
//! (release build) in memory, with `SYNC=normal` and with `SYNC=full`, the same run.
//!
//! 1. `POST /events` from 64 keep-alive connections, rounds of memory / normal / full in turn;
//!    the median rate of each and its ratio to memory, with the writer's transactions per
//!    second and writes per transaction (from its stop line).
//! 2. A database of 1,000,000 events (written with SQLite directly): start-up time to serving,
//!    the load time the logger logs, bytes on disk per event and `VmRSS` after loading; then
//!    the same 1,000,000 events posted to an in-memory logger and its `VmRSS`.
//!
//! `cargo build --release --bins --examples && target/release/examples/durability`
//! (`make bench-durability`). `ROUNDS` (3), `SECONDS` (5) and `EVENTS` (1000000) change it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running logger, the address it listens on and its stderr lines as they come.
struct Logger {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
    started: Duration,
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/release/examples/durability -> target/release/event-logger
    exe.parent()
        .and_then(Path::parent)
        .expect("in target/")
        .join("event-logger")
}

fn start(env: &[(&str, &str)]) -> Logger {
    let began = Instant::now();
    let mut child = Command::new(binary())
        .envs([("PORT", "0"), ("HTTP_THREADS", "64"), ("LOG_LEVEL", "info")])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start event-logger (build it: cargo build --release --bins)");
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match listening(&lines) {
        Some(addr) => Logger {
            child,
            addr,
            lines,
            started: began.elapsed(),
        },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the logger did not start");
        }
    }
}

/// The address of the "listening on" line, echoing the "loaded" line on the way.
fn listening(lines: &mpsc::Receiver<String>) -> Option<String> {
    let mark = "listening on http://";
    loop {
        let line = lines.recv_timeout(Duration::from_secs(120)).ok()?;
        if let Some(at) = line.find(mark) {
            return line[at + mark.len()..]
                .split_whitespace()
                .next()
                .map(str::to_owned);
        }
        if line.contains("loaded") {
            eprintln!("  {}", line.split("] ").last().unwrap_or(&line));
        }
    }
}

impl Logger {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGTERM; the writer's stop line, if any.
    fn stop(mut self) -> Option<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.lines
            .try_iter()
            .find(|l| l.contains("writer stopped after"))
    }
}

/// POSTs from [`CLIENTS`] connections for `seconds`, or until `limit` were accepted: the count.
fn post_load(addr: &str, seconds: u64, limit: u64) -> u64 {
    let accepted = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let url = format!("http://{addr}/events");
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (accepted, stop, url) = (&accepted, &stop, &url);
            s.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let body = format!(
                    r#"{{"user_id":"user-{c}","description":"bench event from client {c}"}}"#
                );
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = agent.post(url).send(body.as_bytes())
                        && r.status() == 200
                        && accepted.fetch_add(1, Ordering::Relaxed) + 1 >= limit
                    {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
    });
    accepted.load(Ordering::Relaxed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `commits` and `writes` from "writer stopped after C commits of W creates and updates".
fn writer_stats(line: &str) -> (f64, f64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "after").unwrap();
    (
        words[at + 1].parse().unwrap(),
        words[at + 4].parse().unwrap(),
    )
}

fn post_bench(rounds: u64, seconds: u64) {
    let modes = [
        ("memory", None),
        ("normal", Some("normal")),
        ("full", Some("full")),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut commit_rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut per_commit: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        for (m, (name, sync)) in modes.iter().enumerate() {
            let dir = std::env::temp_dir()
                .join(format!("ens-bench-{}-{round}-{name}", std::process::id()));
            let dir_text = dir.to_string_lossy().into_owned();
            let mut env = vec![];
            if let Some(sync) = sync {
                env = vec![("DATA_DIR", dir_text.as_str()), ("SYNC", sync)];
            }
            let logger = start(&env);
            let n = post_load(&logger.addr, seconds, u64::MAX);
            let rate = n as f64 / seconds as f64;
            rates[m].push(rate);
            if let Some((commits, writes)) = logger.stop().as_deref().map(writer_stats) {
                commit_rates[m].push(commits / seconds as f64);
                per_commit[m].push(writes / commits.max(1.0));
            }
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("round {round} {name}: {rate:.0} POST/s");
        }
    }
    let memory = median(rates[0].clone());
    println!(
        "| mode | POST/s (median of {rounds}) | × memory | transactions/s | events per transaction |"
    );
    println!("|---|---|---|---|---|");
    for (m, (name, _)) in modes.iter().enumerate() {
        let rate = median(rates[m].clone());
        let (tps, per) = if commit_rates[m].is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            (
                format!("{:.0}", median(commit_rates[m].clone())),
                format!("{:.1}", median(per_commit[m].clone())),
            )
        };
        println!(
            "| {name} | {rate:.0} | {:.2} | {tps} | {per} |",
            rate / memory
        );
    }
}

/// A database of `events` events, as the logger writes it: the logger creates the schema, SQLite
/// fills the table in one statement.
fn seed(dir: &Path, events: u64) {
    let dir_text = dir.to_string_lossy().into_owned();
    start(&[("DATA_DIR", &dir_text)]).stop();
    let db = rusqlite::Connection::open(dir.join("events.db")).expect("open events.db");
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO events SELECT i, randomblob(16), 'user-' || (i % 64), \
         'bench event from client ' || (i % 64), 'Processed', 1764000000000000 + i, \
         1764000000000000 + i, 2, 1 FROM n",
        [events as i64],
    )
    .expect("seed");
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
}

fn startup_bench(events: u64) {
    let dir = std::env::temp_dir().join(format!("ens-bench-{}-startup", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    seed(&dir, events);
    let bytes = std::fs::metadata(dir.join("events.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    let dir_text = dir.to_string_lossy().into_owned();
    let logger = start(&[("DATA_DIR", &dir_text)]);
    let (started, durable_rss) = (logger.started, logger.rss_kib());
    logger.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let logger = start(&[]);
    let posted = post_load(&logger.addr, 3_600, events);
    let memory_rss = logger.rss_kib();
    logger.stop();
    println!();
    println!("| {events} events | figure |");
    println!("|---|---|");
    println!(
        "| start-up to serving, from events.db | {:.2} s |",
        started.as_secs_f64()
    );
    println!(
        "| bytes on disk per event | {:.0} |",
        bytes as f64 / events as f64
    );
    println!(
        "| VmRSS after loading from disk | {:.1} MiB |",
        durable_rss as f64 / 1024.0
    );
    println!(
        "| VmRSS after {posted} POSTs in memory | {:.1} MiB |",
        memory_rss as f64 / 1024.0
    );
    println!(
        "| disk ÷ memory | {:.2} |",
        durable_rss as f64 / memory_rss as f64
    );
}

fn main() {
    post_bench(env_or("ROUNDS", 3), env_or("SECONDS", 5));
    startup_bench(env_or("EVENTS", 1_000_000));
}
