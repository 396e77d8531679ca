//! Memory soak of the Event Logger: resident memory after 1,000,000 events and 1,000,000
//! updates, then every 5 s under 60 s of steady mixed load (reads, updates, pages; no
//! creates, so the store does not grow and any growth would be a leak).
//!
//! `cargo run --release --example soak [-- EVENTS SECONDS]`. The server runs in this process
//! (embedded notifier, output discarded) and so do the HTTP clients; figures are this
//! process's `VmRSS`, so they include the clients' few MiB.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_notification::logger::{EventLogger, LoggerSettings};

const CLIENTS: usize = 4;

fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Runs `work(client, i)` for `i` in `0..total`, spread over the client threads; returns the
/// rate per second.
fn spread(total: usize, work: impl Fn(&ureq::Agent, usize) + Sync) -> f64 {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let agent = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    work(&agent, i);
                }
            });
        }
    });
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);

    let mut settings = LoggerSettings::from_lookup(|_| None).expect("defaults");
    settings.port = 0;
    settings.http_threads = 4;
    let logger =
        EventLogger::start(&settings, Box::new(std::io::sink())).expect("the server starts");
    let base = format!("http://{}", logger.local_addr());
    let start_rss = rss_mib();
    println!("start: RSS {start_rss:.1} MiB");

    let ids: Vec<String> = {
        let ids = std::sync::Mutex::new(vec![String::new(); events]);
        let rate = spread(events, |agent, i| {
            loop {
                let body = serde_json::json!({"user_id": format!("user-{}", i % 1000), "description": format!("soak event number {i}")});
                let mut response = agent
                    .post(&format!("{base}/events"))
                    .send_json(&body)
                    .expect("POST");
                match response.status().as_u16() {
                    200 => {
                        let event: serde_json::Value =
                            response.body_mut().read_json().expect("JSON");
                        ids.lock().unwrap()[i] = event["event_id"].as_str().expect("id").to_owned();
                        break;
                    }
                    // The notification queue is full: back off as a client would.
                    503 => std::thread::sleep(Duration::from_millis(10)),
                    other => panic!("POST answered {other}"),
                }
            }
        });
        println!(
            "after {events} events ({rate:.0}/s): RSS {:.1} MiB, {:.0} bytes/event",
            rss_mib(),
            (rss_mib() - start_rss) * 1048576.0 / events as f64
        );
        ids.into_inner().unwrap()
    };

    let rate = spread(events, |agent, i| {
        let status = agent
            .put(&format!("{base}/events/{}", ids[(i * 7919) % events]))
            .send_json(serde_json::json!({"status": format!("s{}", i % 50)}))
            .expect("PUT")
            .status();
        assert_eq!(status, 200);
    });
    println!(
        "after {events} updates ({rate:.0}/s): RSS {:.1} MiB (peak {:.1} MiB)",
        rss_mib(),
        status_kib("VmHWM:") / 1024.0
    );

    let done = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let samples = std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (done, ids, base) = (&done, &ids, &base);
            scope.spawn(move || {
                let agent = agent();
                let mut i = c;
                while Instant::now() < deadline {
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let id = &ids[(i >> 11) % ids.len()];
                    let status = match i % 10 {
                        0..=4 => agent.get(&format!("{base}/events/{id}")).call(),
                        5..=8 => agent
                            .put(&format!("{base}/events/{id}"))
                            .send_json(serde_json::json!({"description": format!("changed {i}")})),
                        _ => agent
                            .get(&format!(
                                "{base}/events?limit=20&offset={}",
                                (i >> 20) % ids.len()
                            ))
                            .call(),
                    }
                    .expect("request")
                    .status();
                    assert_eq!(status, 200);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut samples = Vec::new();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(5).min(deadline - Instant::now()));
            samples.push(rss_mib());
            println!(
                "steady load t={:>2}s: RSS {:.1} MiB, {} requests",
                samples.len() * 5,
                rss_mib(),
                done.load(Ordering::Relaxed)
            );
        }
        samples
    });
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let max = samples.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "steady load {seconds} s: {:.0} requests/s; RSS first {first:.1}, last {last:.1}, max {max:.1} MiB (last/first {:.3})",
        done.load(Ordering::Relaxed) as f64 / seconds as f64,
        last / first
    );
    println!("events stored: {}", logger.store().len());
    logger.stop();
}
