//! `DATA_DIR`: the real binary over real files, killed for real. An acknowledged write is on
//! disk (found in `events.db` at once, and after a `kill -9`); updates to one event keep one
//! order on disk, in memory and in the answers; a read never waits for the disk; unnotified
//! events are notified after a crash (at least once); a full disk answers `503` and recovers;
//! and a directory that cannot be used stops the start with one line.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::broker::broker;
use crate::common::datadir::DataDir;
use crate::common::event::new_event;
use crate::common::http::{Client, TestResponse, client};
use crate::common::process::Service;
use crate::common::proxy::{Mode, Proxy};
use crate::common::services::{Logger, health, notified, start_processor, stop_processor};
use crate::common::wait::wait_until;

trait OnDisk {
    /// The value for `DATA_DIR`.
    fn env(&self) -> String;
    fn db(&self) -> PathBuf;
    /// A read-only connection to `events.db` (beside the logger's, as an operator's would be).
    fn read(&self) -> rusqlite::Connection;
    /// `PRAGMA integrity_check` of `events.db`: `"ok"` for a sound file.
    fn integrity(&self) -> String;
}

impl OnDisk for DataDir {
    fn env(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    fn db(&self) -> PathBuf {
        self.path().join("events.db")
    }

    fn read(&self) -> rusqlite::Connection {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        rusqlite::Connection::open_with_flags(self.db(), flags).expect("open events.db read-only")
    }

    fn integrity(&self) -> String {
        self.read()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check runs")
    }
}

/// The logger on `dir` (embedded mode, `SYNC=normal` unless `extra` says otherwise).
fn logger_on(dir: &DataDir, extra: &[(&str, &str)]) -> (Service, Client) {
    let mut env = vec![("DATA_DIR", dir.env()), ("LOG_LEVEL", "info".to_owned())];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let (service, addr) = Service::logger(&env);
    (service, Client::new(addr))
}

/// Starts the logger on `dir` expecting it to fail: its exit code and stderr.
fn failed_start(dir: &str, configure: impl FnOnce(&mut std::process::Command)) -> (i32, String) {
    let env = [("PORT", "0"), ("DATA_DIR", dir), ("LOG_LEVEL", "info")];
    let mut service = Service::start_with("event-logger", &[], &env, configure);
    let status = service.wait(Duration::from_secs(20)).expect("exits");
    (status.code().unwrap_or(-1), service.stderr.text())
}

fn kill(mut service: Service) {
    service.signal("KILL");
    service.wait(Duration::from_secs(10)).expect("killed");
}

fn all_events(client: &Client) -> (Vec<Value>, usize) {
    let r = client.get("/events");
    assert_eq!(r.status, 200);
    let total = r
        .header("X-Total-Count")
        .and_then(|n| n.parse().ok())
        .expect("count");
    (r.json().as_array().expect("array").clone(), total)
}

fn put(client: &Client, id: &str, body: &Value) -> TestResponse {
    let path = format!("/events/{id}");
    client.request("PUT", &path, &[], Some(body.to_string().as_bytes()))
}

#[test]
fn an_acknowledged_create_is_in_the_file_before_its_answer() {
    let dir = DataDir::new("ack");
    let (_logger, client) = logger_on(&dir, &[]);
    let file = dir.read();
    for i in 0..20 {
        let id = client.create("u", &format!("e{i}"))["event_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        let found: i64 = file
            .query_row(
                "SELECT count(*) FROM events WHERE id = ?1",
                [uuid.as_bytes()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 1, "event {i} answered 200 but not committed");
    }
}

#[test]
fn updates_to_one_event_keep_one_order_on_disk_in_memory_and_in_answers() {
    let dir = DataDir::new("order");
    let (logger, client) = logger_on(&dir, &[("HTTP_THREADS", "16")]);
    let id = client.create("u", "contended")["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (answers, id, addr) = (answers.clone(), id.clone(), client.addr);
            s.spawn(move || {
                let client = Client::new(addr);
                for k in 0..25 {
                    let status = format!("s{t}-{k}");
                    let r = put(&client, &id, &json!({ "status": status }));
                    assert_eq!(r.status, 200);
                    let version = r.header("ETag").unwrap().trim_matches('"').to_owned();
                    let version: u64 = version
                        .trim_start_matches("v")
                        .parse()
                        .unwrap_or_else(|_| panic!("ETag {version:?}"));
                    assert_eq!(r.json()["status"], status.as_str());
                    answers.lock().unwrap().push((version, status));
                }
            });
        }
    });
    let mut answers = answers.lock().unwrap().clone();
    answers.sort();
    let versions: Vec<u64> = answers.iter().map(|(v, _)| *v).collect();
    let first = versions[0];
    assert_eq!(
        versions,
        (first..first + 200).collect::<Vec<_>>(),
        "one version per answer"
    );
    let last = &answers.last().unwrap().1;
    let memory = client.get(&format!("/events/{id}"));
    assert_eq!(
        &memory.json()["status"],
        last.as_str(),
        "memory holds the last answer"
    );
    let (status, version): (String, i64) = dir
        .read()
        .query_row("SELECT status, version FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (&status, version as u64),
        (last, *versions.last().unwrap()),
        "disk too"
    );
    kill(logger);
    let (_again, client) = logger_on(&dir, &[]);
    let after = client.get(&format!("/events/{id}"));
    assert_eq!(&after.json()["status"], last.as_str());
    assert_eq!(
        after.header("ETag"),
        memory.header("ETag"),
        "the version survives a restart"
    );
}

#[test]
fn reads_never_wait_for_a_disk_write() {
    let dir = DataDir::new("noblock");
    let (_logger, client) = logger_on(&dir, &[]);
    let kept = client.create("u", "before")["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An operator's connection holds SQLite's write lock: the writer's commit waits for it.
    let holder = rusqlite::Connection::open(dir.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let addr = client.addr;
    let post = std::thread::spawn(move || {
        Client::new(addr).post_json("/events", &new_event("u", "blocked"))
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !post.is_finished(),
        "the POST was answered before its commit"
    );
    let started = Instant::now();
    assert_eq!(client.get(&format!("/events/{kept}")).status, 200);
    assert_eq!(
        all_events(&client).1,
        1,
        "the uncommitted event is not visible"
    );
    assert_eq!(health(&client)["storage"], "ok");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "reads waited {:?}",
        started.elapsed()
    );
    holder.execute_batch("COMMIT").unwrap();
    let answer = post.join().unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(all_events(&client).1, 2);
}

#[test]
fn a_restart_keeps_ids_order_statuses_timestamps_and_versions() {
    let dir = DataDir::new("restart");
    let (mut logger, client) = logger_on(&dir, &[]);
    let ids: Vec<String> = (0..10)
        .map(|i| {
            client.create(&format!("u{i}"), "d")["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Let the embedded notifier mark them first, so the statuses below are the last word.
    assert!(wait_until(
        Duration::from_secs(10),
        || health(&client)["pending"] == 0
    ));
    assert!(wait_until(Duration::from_secs(10), || {
        client
            .get("/events?status=Processed&limit=0")
            .header("X-Total-Count")
            == Some("10")
    }));
    assert_eq!(
        put(&client, &ids[2], &json!({"status": "Cancelled"})).status,
        200
    );
    assert_eq!(
        put(
            &client,
            &ids[5],
            &json!({"description": "changed", "user_id": "x"})
        )
        .status,
        200
    );
    let (before, _) = all_events(&client);
    let etags: Vec<Option<String>> = ids
        .iter()
        .map(|id| {
            client
                .get(&format!("/events/{id}"))
                .header("ETag")
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(logger.terminate(Duration::from_secs(15)).code(), Some(0));
    let (logger, client) = logger_on(&dir, &[]);
    assert!(
        logger.stderr.text().contains("loaded 10 events"),
        "{}",
        logger.stderr.text()
    );
    let (after, total) = all_events(&client);
    assert_eq!(
        (after.clone(), total),
        (before, 10),
        "same events, same order, same fields"
    );
    let listed: Vec<&str> = after
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for (id, etag) in ids.iter().zip(&etags) {
        assert_eq!(
            &client
                .get(&format!("/events/{id}"))
                .header("ETag")
                .map(str::to_owned),
            etag
        );
    }
    // And after a kill -9 right after more writes.
    let more: Vec<String> = (0..5)
        .map(|_| {
            client.create("late", "d")["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    kill(logger);
    let (_logger, client) = logger_on(&dir, &[]);
    let (after, total) = all_events(&client);
    assert_eq!(total, 15);
    let listed: Vec<&str> = after
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = ids.iter().chain(&more).map(String::as_str).collect();
    assert_eq!(listed, expected);
}

/// What a storm client knows of one of its events.
#[derive(Default, Clone)]
struct Known {
    /// The last status a `200` acknowledged.
    acked: String,
    /// A status sent whose answer never came (the kill came first): it may or may not be stored.
    maybe: Option<String>,
}

#[derive(Default)]
struct StormLog {
    events: HashMap<String, Known>,
    posts_ok: usize,
    puts_ok: usize,
    /// POSTs sent whose answer never came.
    posts_unanswered: usize,
}

fn storm_client(addr: std::net::SocketAddr, t: usize, stop: &AtomicBool, log: &Mutex<StormLog>) {
    let agent = client();
    let url = |path: &str| format!("http://{addr}{path}");
    let mine: &mut Vec<String> = &mut Vec::new();
    for k in 0.. {
        if stop.load(Ordering::Acquire) {
            return;
        }
        if k % 2 == 0 || mine.is_empty() {
            let body = new_event(&format!("storm{t}"), &format!("e{k}")).to_string();
            match agent.post(url("/events")).send(body.as_bytes()) {
                Ok(mut r) if r.status() == 200 => {
                    let event: Value = r.body_mut().read_json().expect("JSON");
                    let id = event["event_id"].as_str().unwrap().to_owned();
                    let mut log = log.lock().unwrap();
                    log.posts_ok += 1;
                    log.events.insert(
                        id.clone(),
                        Known {
                            acked: "NotProcessed".into(),
                            maybe: None,
                        },
                    );
                    mine.push(id);
                }
                Ok(r) => panic!("POST answered {}", r.status()),
                Err(_) => {
                    log.lock().unwrap().posts_unanswered += 1;
                    return;
                }
            }
        } else {
            let id = mine[k % mine.len()].clone();
            let status = format!("s{t}-{k}");
            let body = json!({ "status": status }).to_string();
            log.lock().unwrap().events.get_mut(&id).unwrap().maybe = Some(status.clone());
            match agent
                .put(url(&format!("/events/{id}")))
                .send(body.as_bytes())
            {
                Ok(r) if r.status() == 200 => {
                    let mut log = log.lock().unwrap();
                    log.puts_ok += 1;
                    let known = log.events.get_mut(&id).unwrap();
                    (known.acked, known.maybe) = (status, None);
                }
                Ok(r) => panic!("PUT answered {}", r.status()),
                Err(_) => return,
            }
        }
    }
}

#[test]
fn kill_9_during_a_storm_loses_no_acknowledged_write() {
    let dir = DataDir::new("storm");
    let (logger, client) = logger_on(&dir, &[("HTTP_THREADS", "64"), ("SYNC", "normal")]);
    let stop = AtomicBool::new(false);
    let log = Mutex::new(StormLog::default());
    std::thread::scope(|s| {
        for t in 0..64 {
            let (stop, log, addr) = (&stop, &log, client.addr);
            s.spawn(move || storm_client(addr, t, stop, log));
        }
        let enough = wait_until(Duration::from_secs(60), || {
            log.lock().unwrap().puts_ok >= 2_000
        });
        assert!(enough, "the storm did not get going");
        kill(logger);
        stop.store(true, Ordering::Release);
    });
    let log = log.into_inner().unwrap();
    let (_logger, client) = logger_on(&dir, &[]);
    let (events, total) = all_events(&client);
    let found: HashMap<&str, &str> = events
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    let mut lost = Vec::new();
    for (id, known) in &log.events {
        let allowed = |s: &str| {
            s == known.acked
                || known.maybe.as_deref() == Some(s)
                // The embedded notifier marks an event no client changed yet.
                || (known.acked == "NotProcessed" && s == "Processed")
        };
        match found.get(id.as_str()) {
            Some(status) if allowed(status) => {}
            other => lost.push(format!(
                "{id}: acked {:?} maybe {:?}, found {other:?}",
                known.acked, known.maybe
            )),
        }
    }
    eprintln!(
        "storm: {} POST 200s, {} PUT 200s, {} POSTs unanswered at the kill; after restart {} events, {} of the acknowledged found as acknowledged",
        log.posts_ok,
        log.puts_ok,
        log.posts_unanswered,
        total,
        log.events.len() - lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        (log.posts_ok..=log.posts_ok + log.posts_unanswered).contains(&total),
        "X-Total-Count {total} for {} acknowledged creates ({} unanswered)",
        log.posts_ok,
        log.posts_unanswered
    );
    assert_eq!(dir.integrity(), "ok");
}

#[test]
fn notifications_pending_at_a_crash_are_delivered_after_the_restart() {
    let Some(broker) = broker("notifications_pending_at_a_crash") else {
        return;
    };
    let topology = broker.topology("durable-crash");
    let proxy = Proxy::start(broker.addr(), Mode::Pass);
    let url = broker.url_via(proxy.addr);
    let dir = DataDir::new("crash");
    let data_dir = dir.env();
    let env = [("DATA_DIR", data_dir.as_str())];
    let logger = Logger::start(&topology, &url, &env);
    logger.await_connected(Duration::from_secs(30));
    let confirmed: Vec<String> = (0..20)
        .map(|i| logger.post("u", &format!("c{i}")).unwrap())
        .collect();
    let pending_zero = wait_until(Duration::from_secs(20), || logger.health()["pending"] == 0);
    assert!(pending_zero, "{}", logger.health());
    proxy.set(Mode::Close);
    crate::common::services::await_broker(&logger.client, "disconnected", Duration::from_secs(20));
    let unsent: Vec<String> = (0..30)
        .map(|i| logger.post("u", &format!("p{i}")).unwrap())
        .collect();
    assert_eq!(logger.health()["pending"], 30);
    kill(logger.service);
    // These messages were queued by the process just killed: the new one must know their ids.
    assert_eq!(topology.ready(&topology.queue), 20);
    proxy.set(Mode::Pass);
    let logger = Logger::start(&topology, &url, &env);
    let stderr = logger.service.stderr.text();
    assert!(stderr.contains("loaded 50 events"), "{stderr}");
    let processor = start_processor(&topology, &url, logger.addr(), &[]);
    logger.await_processed(50, Duration::from_secs(60));
    let processor = stop_processor(processor);
    let mut lines: HashMap<String, usize> = HashMap::new();
    for id in notified(&processor.stdout.text()) {
        *lines.entry(id).or_default() += 1;
    }
    let confirmed: HashSet<&String> = confirmed.iter().collect();
    let duplicates: Vec<(&String, &usize)> = lines.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "crash with 30 unsent and 20 confirmed events: {} notification lines for 50 events, {} duplicated",
        lines.values().sum::<usize>(),
        duplicates.len()
    );
    for id in confirmed.iter().copied().chain(&unsent) {
        assert!(lines.contains_key(id), "event {id} never notified");
    }
    for (id, n) in &duplicates {
        // At least once: only an event confirmed before the crash whose mark was not saved
        // yet may go out again, and then once more only.
        assert!(
            confirmed.contains(id) && **n == 2,
            "{id} notified {n} times"
        );
    }
    assert_eq!(
        topology.ready(&topology.dead_queue()),
        0,
        "nothing dead-lettered"
    );
    logger.stop();
}

#[test]
fn a_full_disk_answers_503_keeps_the_file_sound_and_recovers() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 256 * 1024;
    let dir = DataDir::new("full");
    let env = [
        ("PORT", "0".to_owned()),
        ("DATA_DIR", dir.env()),
        ("LOG_LEVEL", "info".to_owned()),
    ];
    let service = Service::start_with("event-logger", &[], &env, |command| {
        // SAFETY: only the setrlimit system call runs between fork and exec.
        unsafe {
            command
                .pre_exec(|| rlimit::setrlimit(rlimit::Resource::FSIZE, LIMIT, rlimit::INFINITY));
        }
    });
    let client = Client::new(service.listening_addr(Duration::from_secs(20)));
    let big = "x".repeat(4000);
    let mut acked = Vec::new();
    let refused = loop {
        let r = client.post_json("/events", &new_event("u", &big));
        match r.status {
            200 => acked.push(r.json()["event_id"].as_str().unwrap().to_owned()),
            _ => break r,
        }
        assert!(acked.len() < 1000, "the file size limit never hit");
    };
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be written")
    );
    assert!(refused.header("Retry-After").is_some());
    let again = client.post_json("/events", &new_event("u", &big));
    assert_eq!(again.status, 503, "still full: still refused");
    let h = health(&client);
    assert_eq!(h["storage"], "failing", "{h}");
    assert!(h["storage_error"].is_string(), "{h}");
    let (events, total) = all_events(&client);
    assert_eq!(
        (events.len(), total),
        (acked.len(), acked.len()),
        "reads keep working"
    );
    assert_eq!(dir.integrity(), "ok", "no corrupt file");
    // Space comes back: the next write succeeds without a restart.
    let pid = service.pid() as i32;
    rlimit::prlimit(
        pid,
        rlimit::Resource::FSIZE,
        Some((rlimit::INFINITY, rlimit::INFINITY)),
        None,
    )
    .expect("prlimit");
    let r = client.post_json("/events", &new_event("u", "after"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    acked.push(r.json()["event_id"].as_str().unwrap().to_owned());
    assert_eq!(health(&client)["storage"], "ok");
    kill(service);
    let (_logger, client) = logger_on(&dir, &[]);
    let (events, _) = all_events(&client);
    let listed: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, acked.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(dir.integrity(), "ok");
}

#[test]
fn a_read_only_directory_is_one_line_and_exit_1() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let dir = DataDir::new("readonly");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root may write anywhere: the logger then runs as nobody, as it runs as a user in Docker.
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let (code, err) = failed_start(&dir.env(), |command| {
        if root {
            command.uid(65534).gid(65534);
        }
    });
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&dir.env()) && err.contains("ermission denied"),
        "{err}"
    );
}

#[test]
fn a_second_process_on_the_same_directory_is_one_line_and_exit_1() {
    let dir = DataDir::new("twice");
    let (_first, client) = logger_on(&dir, &[]);
    client.create("u", "d");
    let (code, err) = failed_start(&dir.env(), |_| {});
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&dir.env()) && err.contains("in use"), "{err}");
    assert_eq!(all_events(&client).1, 1, "the first one goes on");
}

#[test]
fn a_newer_schema_version_is_refused() {
    let dir = DataDir::new("newer");
    let db = rusqlite::Connection::open(dir.db()).unwrap();
    db.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
        .unwrap();
    drop(db);
    let (code, err) = failed_start(&dir.env(), |_| {});
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("schema version 99") && err.contains("events.db"),
        "{err}"
    );
    let version: i64 = dir
        .read()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99, "left as it was");
}

#[test]
fn a_corrupt_database_is_refused_naming_the_file_and_left_alone() {
    let dir = DataDir::new("corrupt");
    let garbage = b"this is not a SQLite database, but it is somebody's file".repeat(100);
    std::fs::write(dir.db(), &garbage).unwrap();
    let (code, err) = failed_start(&dir.env(), |_| {});
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&dir.db().display().to_string()) && err.contains("not a database"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.db()).unwrap(),
        garbage,
        "never overwritten"
    );
}

#[test]
fn without_data_dir_the_start_says_events_are_lost_at_exit() {
    let (logger, addr) = Service::logger(&[("LOG_LEVEL", "info")]);
    let client = Client::new(addr);
    assert!(
        logger
            .stderr
            .text()
            .contains("events are kept in memory only and lost at exit"),
        "{}",
        logger.stderr.text()
    );
    let h = health(&client);
    assert_eq!(
        (&h["storage"], &h["storage_error"]),
        (&json!("memory"), &Value::Null)
    );
}
