//! Static checks of `docker-compose.yml`, the `Dockerfile` and `.dockerignore` (there is no
//! Docker engine on the development and CI machines; `.ci/docker.sh` validates the Compose file
//! with `docker-compose config -q`, lints the Dockerfile and replays its builder stage).
//!
//! The point of this file: every environment variable a binary reads (`config::LOGGER_VARS`,
//! `config::PROCESSOR_VARS`) is set by that exact name in the `environment:` of the service that
//! runs it, and nothing else is (a misspelt name would be silently ignored by the binary); the
//! services are wired to each other, start in order, have health checks, and are given more time
//! to stop than their `SHUTDOWN_TIMEOUT_SECS`.

use std::collections::BTreeSet;
use std::path::Path;

use event_notification::logger::LOGGER_VARS;
use event_notification::processor::PROCESSOR_VARS;
use event_notification::shared::env::Var;
use libtest_mimic::Trial;
use serde_json::Value;

pub fn tests() -> Vec<Trial> {
    crate::trials![
        each_service_sets_exactly_the_variables_its_binary_reads,
        the_services_are_wired_to_each_other,
        services_start_in_order_once_healthy_and_the_processor_scales,
        stop_grace_periods_outlast_the_shutdown_timeouts,
        every_setting_taken_from_the_environment_is_documented,
        the_dockerfile_builds_and_runs_as_the_issue_says,
    ]
}

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

/// `services.<service>.<path...>`; `Value::Null` when absent.
fn at<'a>(file: &'a Value, service: &str, path: &[&str]) -> &'a Value {
    path.iter()
        .fold(&file["services"][service], |node, key| &node[key])
}

/// A string setting; panics naming the setting when it is absent or not a string.
fn text<'a>(file: &'a Value, service: &str, path: &[&str]) -> &'a str {
    at(file, service, path)
        .as_str()
        .unwrap_or_else(|| panic!("services.{service}.{} is not a string", path.join(".")))
}

fn strings(value: &Value) -> Vec<&str> {
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    items.iter().filter_map(Value::as_str).collect()
}

/// `20s` as seconds (the Compose file writes every duration in whole seconds).
fn seconds(text: &str) -> u64 {
    text.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text:?}: write durations as whole seconds, `20s`"))
}

fn each_service_sets_exactly_the_variables_its_binary_reads() {
    let file = compose();
    for (service, vars) in [
        ("event-logger", LOGGER_VARS),
        ("notification-processor", PROCESSOR_VARS),
    ] {
        // The mapping form only: in the list form `- KEY=value` a name could hide in a value.
        let env = at(&file, service, &["environment"])
            .as_object()
            .unwrap_or_else(|| panic!("services.{service}.environment must be a mapping"));
        let set: BTreeSet<&str> = env.keys().map(String::as_str).collect();
        let read: BTreeSet<&str> = vars.iter().map(|v: &Var| v.name).collect();
        assert_eq!(
            set, read,
            "services.{service}.environment (left) must name exactly what {service} reads (right)"
        );
    }
}

fn the_services_are_wired_to_each_other() {
    let file = compose();
    let services: BTreeSet<&str> = file["services"]
        .as_object()
        .expect("services")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["rabbitmq", "event-logger", "notification-processor"])
    );
    for service in ["event-logger", "notification-processor"] {
        assert_eq!(strings(at(&file, service, &["command"])), [service]);
        assert_eq!(text(&file, service, &["build"]), ".");
    }
    let logger = |key| text(&file, "event-logger", &["environment", key]);
    let processor = |key| text(&file, "notification-processor", &["environment", key]);
    assert_eq!((logger("HOST"), logger("PORT")), ("0.0.0.0", "8000"));
    assert_eq!(processor("API_URL"), "http://event-logger:8000");
    let ports = strings(at(&file, "event-logger", &["ports"]));
    assert!(ports.iter().any(|p| p.ends_with(":8000")), "{ports:?}");

    // One broker, exchange, queue and token for both, with the broker's own credentials.
    let user = text(&file, "rabbitmq", &["environment", "RABBITMQ_DEFAULT_USER"]);
    let pass = text(&file, "rabbitmq", &["environment", "RABBITMQ_DEFAULT_PASS"]);
    assert_eq!(
        logger("AMQP_URL"),
        format!("amqp://{user}:{pass}@rabbitmq:5672/%2f")
    );
    for key in [
        "AMQP_URL",
        "AMQP_EXCHANGE",
        "AMQP_QUEUE",
        "AMQP_ROUTING_KEY",
        "AMQP_QUEUE_TYPE",
        "API_TOKEN",
        "LOG_LEVEL",
    ] {
        assert_eq!(
            logger(key),
            processor(key),
            "{key} differs between services"
        );
    }
}

fn services_start_in_order_once_healthy_and_the_processor_scales() {
    let file = compose();
    let image = text(&file, "rabbitmq", &["image"]);
    let major = image
        .strip_prefix("rabbitmq:")
        .and_then(|tag| tag.split(['.', '-']).next()?.parse::<u32>().ok());
    assert!(
        major >= Some(3) && image.ends_with("-management"),
        "{image}"
    );
    assert_eq!(
        strings(at(&file, "rabbitmq", &["healthcheck", "test"])),
        ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    );
    assert_eq!(
        strings(at(&file, "event-logger", &["healthcheck", "test"])),
        ["CMD", "event-logger", "--healthcheck"]
    );
    // The image's HEALTHCHECK probes the logger's port, which a processor container has not.
    assert_eq!(
        at(&file, "notification-processor", &["healthcheck", "disable"]),
        &Value::Bool(true)
    );

    // Queued messages survive a re-created container: a named volume, a fixed node name.
    let volumes = strings(at(&file, "rabbitmq", &["volumes"]));
    let (volume, mount) = volumes[0].split_once(':').expect("NAME:/path");
    assert_eq!(mount, "/var/lib/rabbitmq");
    assert!(file["volumes"].get(volume).is_some(), "volume {volume}");
    assert_eq!(text(&file, "rabbitmq", &["hostname"]), "rabbitmq");

    for (service, dependencies) in [
        ("event-logger", &["rabbitmq"][..]),
        ("notification-processor", &["rabbitmq", "event-logger"]),
    ] {
        for dependency in dependencies {
            let condition = ["depends_on", dependency, "condition"];
            assert_eq!(text(&file, service, &condition), "service_healthy");
        }
    }
    for key in ["container_name", "ports"] {
        let node = at(&file, "notification-processor", &[key]);
        assert!(node.is_null(), "{key} would break --scale");
    }
    let restart = text(&file, "notification-processor", &["restart"]);
    assert_eq!(restart, "unless-stopped");
}

fn stop_grace_periods_outlast_the_shutdown_timeouts() {
    let file = compose();
    for service in ["event-logger", "notification-processor"] {
        let timeout: u64 = text(&file, service, &["environment", "SHUTDOWN_TIMEOUT_SECS"])
            .parse()
            .expect("SHUTDOWN_TIMEOUT_SECS is a literal number, so it can be compared");
        let grace = seconds(text(&file, service, &["stop_grace_period"]));
        assert!(
            grace >= timeout + 5,
            "{service}: stop_grace_period {grace}s must exceed SHUTDOWN_TIMEOUT_SECS {timeout}s"
        );
    }
}

/// Every string in the file (comments are not in the parsed value).
fn all_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| all_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| all_strings(v, out)),
        _ => {}
    }
}

fn every_setting_taken_from_the_environment_is_documented() {
    let readme = read("README.md");
    let section = readme
        .split_once("## Run with Docker")
        .and_then(|(_, rest)| rest.split("\n## ").next())
        .expect("README has a `Run with Docker` section");
    let file = compose();
    let mut values = Vec::new();
    all_strings(&file, &mut values);
    // `${NAME}`, `${NAME:-default}`, `${NAME-default}`, ...
    let names: BTreeSet<&str> = values
        .iter()
        .flat_map(|v| v.split("${").skip(1))
        .filter_map(|rest| rest.split([':', '-', '?', '}']).next())
        .collect();
    assert!(names.contains("RABBITMQ_PASSWORD"), "{names:?}");
    for name in names {
        let quoted = format!("`{name}`");
        assert!(section.contains(&quoted), "README does not document {name}");
    }
}

fn the_dockerfile_builds_and_runs_as_the_issue_says() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let from: Vec<_> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: builder and runtime");
    assert!(from[0].starts_with("FROM rust:1.") && from[0].ends_with("-bookworm AS builder"));
    assert!(from[1].starts_with("FROM debian:bookworm-slim"));
    let text = lines.join("\n");
    for needle in [
        "cargo build --release --locked --bins",
        "HOST=0.0.0.0",
        "EXPOSE 8000",
        "CMD [\"event-logger\", \"--healthcheck\"]",
        "CMD [\"event-logger\"]",
    ] {
        assert!(text.contains(needle), "Dockerfile lacks {needle:?}");
    }
    // The dependency layer is built from the manifests before the sources are copied in.
    let manifests = text
        .find("COPY Cargo.toml Cargo.lock")
        .expect("manifests copied");
    let sources = text.find("COPY src/").expect("sources copied");
    let first_build = text.find("cargo build").expect("a build");
    assert!(manifests < first_build && first_build < sources);
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER "));
    assert!(
        user.is_some_and(|u| !u.starts_with('0') && !u.starts_with("root")),
        "{user:?}"
    );
    let ignore = read(".dockerignore");
    for entry in [".git", "**/target"] {
        let listed = ignore.lines().any(|l| l.trim() == entry);
        assert!(listed, ".dockerignore lacks {entry}");
    }
}
