//! `amqps://` for real: a CA and a server certificate (for `localhost` only) made by the
//! `openssl` command for this run, `socat`'s `OPENSSL-LISTEN` on a free port in front of the
//! local RabbitMQ, and both binaries through it with `AMQP_TLS_CA_FILE`: the end-to-end flow,
//! then a CA that did not sign the certificate and a host the certificate does not name, each
//! one clear `error` line and a `broker_error`, not a hang.
//!
//! Without `openssl` or `socat` the tests print why and pass, except under `CI=true`, where
//! they fail (`.ci/packages.sh` installs both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::broker::{Topology, broker};
use crate::common::output::SharedBuf;
use crate::common::process::Service;
use crate::common::services::{Logger, notified, start_processor, stop_processor};
use crate::common::wait::wait_until;

/// Whether `tool` runs; `None` (after one line saying why) when it does not and the test may
/// skip. Under `CI=true` a missing tool is a failure.
fn have(tool: &str, version_arg: &str, test: &str) -> bool {
    let runs = Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        let why = format!("`{tool}` is not installed (Debian: apt-get install {tool})");
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{why}; CI=true requires it (.ci/packages.sh installs it)");
        }
        eprintln!("skipped {test}: {why}");
    }
    runs
}

fn tools(test: &str) -> bool {
    have("openssl", "version", test) && have("socat", "-V", test)
}

/// A new P-256 key, unencrypted.
const KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A directory of its own for one test's keys and certificates, removed afterwards.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(test: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("ens-tls-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `openssl` in the directory with `args` (split on spaces: no argument has one).
    fn openssl(&self, args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed CA: `{name}.pem` and `{name}.key`.
    fn ca(&self, name: &str) -> PathBuf {
        self.openssl(&format!(
            "req -x509 {KEY} -keyout {name}.key -out {name}.pem -days 2 -subj /CN=ens-test-{name} \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        ));
        self.path(&format!("{name}.pem"))
    }

    /// `server.pem`/`server.key` for `localhost` (a DNS name, no IP address), signed by `ca`.
    fn server(&self, ca: &str) {
        std::fs::write(
            self.path("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        self.openssl(&format!(
            "req {KEY} -keyout server.key -out server.csr -subj /CN=localhost"
        ));
        self.openssl(&format!(
            "x509 -req -in server.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -out server.pem \
             -days 2 -extfile server.ext"
        ));
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `socat` terminating TLS on a free loopback port and passing the bytes to the broker.
struct Terminator {
    child: Child,
    port: u16,
}

impl Terminator {
    fn start(pki: &Pki, broker: std::net::SocketAddr) -> Terminator {
        let listen = format!(
            "OPENSSL-LISTEN:0,bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
            pki.path("server.pem").display(),
            pki.path("server.key").display()
        );
        let mut child = Command::new("socat")
            .args(["-d", "-d", &listen, &format!("TCP:{broker}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("socat starts");
        let log = SharedBuf::default();
        let mut stderr = child.stderr.take().expect("piped");
        let mut sink = log.clone();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut sink));
        // socat -d -d logs "listening on AF=2 127.0.0.1:PORT" once bound.
        let mut port = None;
        wait_until(Duration::from_secs(10), || {
            port = log
                .text()
                .split("listening on AF=2 127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            port.is_some()
        });
        let Some(port) = port else {
            let _ = child.kill();
            panic!("socat did not say where it listens:\n{}", log.text());
        };
        Terminator { child, port }
    }

    /// The broker's URL through the terminator, with `host` (which must resolve to loopback).
    fn url(&self, host: &str) -> String {
        format!("amqps://guest:guest@{host}:{}/%2f", self.port)
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ca_env(file: &Path) -> [(&'static str, String); 1] {
    [("AMQP_TLS_CA_FILE", file.display().to_string())]
}

#[test]
fn tls_end_to_end_over_amqps_with_the_ca_file() {
    let test = "tls_end_to_end";
    if !tools(test) {
        return;
    }
    let Some(broker) = broker(test) else {
        return;
    };
    let pki = Pki::new("e2e");
    let ca = pki.ca("ca");
    pki.server("ca");
    let tls = Terminator::start(&pki, broker.addr());
    let topology = broker.topology("tls-e2e");
    let url = tls.url("localhost");
    let ca = ca_env(&ca);
    let extra: Vec<(&str, &str)> = ca.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let logger = Logger::start(&topology, &url, &extra);
    logger.await_connected(Duration::from_secs(30));
    let processor = start_processor(&topology, &url, logger.addr(), &extra);
    let accepted: Vec<String> = (0..100)
        .map(|i| logger.post("u", &format!("over TLS {i}")).expect("200"))
        .collect();
    logger.await_processed(100, Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || {
        logger.health()["pending"] == 0
    }));
    let health = logger.health();
    assert_eq!(health["broker"], "connected", "{health}");
    let processor = stop_processor(processor);
    let mut printed = notified(&processor.stdout.text());
    printed.sort();
    let mut wanted = accepted;
    wanted.sort();
    assert_eq!(printed, wanted, "every event notified once, over amqps");
    let log = processor.stderr.text();
    assert!(!log.contains("[ERROR]"), "{log}");
    logger.stop();
}

/// Starts both services against `topology` through `url` with `logger_env` / `processor_env`
/// added; waits until each has logged one `error` line with every part of `parts` and
/// returns their stderr and the logger's `/health` then.
fn both_refuse(
    topology: &Topology,
    url: &str,
    logger_env: &[(&str, String)],
    processor_env: &[(&str, String)],
    parts: &[&str],
) -> (Vec<String>, serde_json::Value) {
    let extra: Vec<(&str, &str)> = logger_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let logger = Logger::start(topology, url, &extra);
    let mut env = topology.env(url);
    env.push(("API_URL", format!("http://{}", logger.addr())));
    env.extend(processor_env.iter().cloned());
    let processor = Service::start("notification-processor", &[], &env);
    let lines = |log: &str| {
        log.lines()
            .filter(|l| l.contains("[ERROR]") && parts.iter().all(|p| l.contains(p)))
            .count()
    };
    // A liveness deadline: the handshake fails at once, it must not wait for a timeout.
    let reported = wait_until(Duration::from_secs(15), || {
        lines(&logger.service.stderr.text()) == 1 && lines(&processor.stderr.text()) == 1
    });
    let logs = vec![logger.service.stderr.text(), processor.stderr.text()];
    assert!(
        reported,
        "no error line with {parts:?}:\n{}",
        logs.join("\n")
    );
    let health = logger.health();
    assert_eq!(health["broker"], "disconnected", "{health}");
    drop(processor);
    logger.stop();
    (logs, health)
}

#[test]
fn tls_a_certificate_from_another_ca_is_one_clear_error_not_a_hang() {
    let test = "tls_wrong_ca";
    if !tools(test) {
        return;
    }
    let Some(broker) = broker(test) else {
        return;
    };
    let pki = Pki::new("wrong-ca");
    pki.ca("ca");
    pki.server("ca");
    let other = pki.ca("other");
    let tls = Terminator::start(&pki, broker.addr());
    let topology = broker.topology("tls-wrong-ca");
    // The logger trusts another CA; the processor only the system's.
    let (logs, health) = both_refuse(
        &topology,
        &tls.url("localhost"),
        &ca_env(&other),
        &[],
        &[
            "the TLS handshake with RabbitMQ",
            "certificate verify failed",
        ],
    );
    let trusted = format!("AMQP_TLS_CA_FILE={}", other.display());
    assert!(logs[0].contains(&trusted), "{}", logs[0]);
    assert!(logs[1].contains("AMQP_TLS_CA_FILE is unset"), "{}", logs[1]);
    assert!(
        health["broker_error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS handshake failed")),
        "{health}"
    );
}

#[test]
fn tls_a_host_the_certificate_does_not_name_is_one_clear_error() {
    let test = "tls_wrong_host";
    if !tools(test) {
        return;
    }
    let Some(broker) = broker(test) else {
        return;
    };
    let pki = Pki::new("wrong-host");
    let ca = pki.ca("ca");
    pki.server("ca");
    let tls = Terminator::start(&pki, broker.addr());
    let topology = broker.topology("tls-wrong-host");
    // The certificate names `localhost`, the URL says 127.0.0.1: the same server, the wrong name.
    let (logs, health) = both_refuse(
        &topology,
        &tls.url("127.0.0.1"),
        &ca_env(&ca),
        &ca_env(&ca),
        &["the TLS handshake with RabbitMQ", "the host in AMQP_URL"],
    );
    for log in &logs {
        assert!(log.contains("mismatch"), "{log}");
    }
    assert!(health["broker_error"].is_string(), "{health}");
}
