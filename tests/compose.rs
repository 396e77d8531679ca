//! Static checks of `docker-compose.yml` and the `Dockerfile` (there is no Docker engine here).
//!
//! Every environment variable a binary reads (`config::LOGGER_VARS`, `config::PROCESSOR_VARS`)
//! must be set, by that exact name, in the `environment:` of the service that runs the binary,
//! and nothing else may be set there (a misspelt name would be silently ignored). The wiring
//! between the services (URLs, start order, health checks, stop grace periods) is checked too.
//!
//! The Compose file is read by a small reader for the block-style YAML subset it is written in
//! (mappings, `- ` lists, comments, quoted scalars); it rejects flow style, anchors and merge keys
//! in the parts it reads, so the test cannot pass by misreading. `docker-compose config -q` in
//! `.ci/docker.sh` checks the file as real YAML and as a Compose file.

use std::collections::BTreeSet;
use std::path::Path;

use event_notification::config::{LOGGER_VARS, PROCESSOR_VARS, Var};

/// A node of the block-YAML tree: a mapping key or a list item, with its inline value.
#[derive(Debug, Default)]
struct Node {
    key: String,
    value: Option<String>,
    children: Vec<Node>,
    line: usize,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.key == key)
    }

    fn at(&self, path: &[&str]) -> &Node {
        let mut node = self;
        for (i, key) in path.iter().enumerate() {
            node = node
                .get(key)
                .unwrap_or_else(|| panic!("docker-compose.yml: no `{}`", path[..=i].join(".")));
        }
        node
    }

    fn keys(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.key.as_str()).collect()
    }

    fn scalar(&self, path: &[&str]) -> String {
        let node = self.at(path);
        node.value
            .clone()
            .unwrap_or_else(|| panic!("`{}` (line {}) has no value", path.join("."), node.line))
    }
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    for q in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(q) && text.ends_with(q) {
            return text[1..text.len() - 1].to_owned();
        }
    }
    text.to_owned()
}

/// The text without a trailing ` # comment` (outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return &line[..i],
            None => {}
        }
        prev = c;
    }
    line
}

/// Parses the block-style YAML subset; panics on anything it does not understand.
fn parse(text: &str) -> Node {
    // Stack of (indent, node) on the path from the root to the last node read.
    let mut stack: Vec<(isize, Node)> = vec![(-1, Node::default())];
    fn close(stack: &mut Vec<(isize, Node)>, indent: isize) {
        while stack.len() > 1 && stack.last().is_some_and(|(i, _)| *i >= indent) {
            let (_, node) = stack.pop().expect("stack has a child");
            stack
                .last_mut()
                .expect("stack has a root")
                .1
                .children
                .push(node);
        }
    }
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim_end();
        if line.trim().is_empty() {
            continue;
        }
        assert!(!line.contains('\t'), "line {}: tab in indentation", n + 1);
        let indent = (line.len() - line.trim_start().len()) as isize;
        let content = line.trim_start();
        assert!(
            !content.starts_with(['{', '&', '*', '|', '>']) && !content.starts_with("<<"),
            "line {}: flow style, anchors and merge keys are not read by this test: {raw}",
            n + 1
        );
        close(&mut stack, indent);
        let node = if let Some(item) = content
            .strip_prefix("- ")
            .or((content == "-").then_some(""))
        {
            Node {
                key: "-".into(),
                value: Some(unquote(item)),
                children: vec![],
                line: n + 1,
            }
        } else {
            let (key, value) = content
                .split_once(": ")
                .or_else(|| content.strip_suffix(':').map(|k| (k, "")))
                .unwrap_or_else(|| panic!("line {}: expected `key: value`: {raw}", n + 1));
            let value = value.trim();
            assert!(
                !value.starts_with(['&', '*']),
                "line {}: anchors/aliases are not read by this test: {raw}",
                n + 1
            );
            Node {
                key: unquote(key),
                value: (!value.is_empty()).then(|| unquote(value)),
                children: vec![],
                line: n + 1,
            }
        };
        stack.push((indent, node));
    }
    close(&mut stack, 0);
    stack.pop().expect("root").1
}

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn compose() -> Node {
    parse(&read("docker-compose.yml"))
}

fn names(vars: &[Var]) -> BTreeSet<&'static str> {
    vars.iter().map(|v| v.name).collect()
}

/// The service's `environment:` as a mapping (the list form `- KEY=value` is refused, so a
/// name cannot hide in a value).
fn environment<'a>(file: &'a Node, service: &str) -> BTreeSet<&'a str> {
    let env = file.at(&["services", service, "environment"]);
    assert!(
        env.value.is_none() && env.children.iter().all(|c| c.key != "-"),
        "services.{service}.environment (line {}) must be a mapping KEY: value",
        env.line
    );
    env.keys().into_iter().collect()
}

fn assert_env_matches(service: &str, vars: &[Var]) {
    let file = compose();
    let set = environment(&file, service);
    let read = names(vars);
    let missing: Vec<_> = read.difference(&set).collect();
    let unknown: Vec<_> = set.difference(&read).collect();
    assert!(
        missing.is_empty(),
        "{service} reads {missing:?}, which docker-compose.yml does not set for it"
    );
    assert!(
        unknown.is_empty(),
        "docker-compose.yml sets {unknown:?} for {service}, which it does not read (misspelt?)"
    );
}

#[test]
fn the_logger_gets_every_variable_it_reads_and_no_other() {
    assert_env_matches("event-logger", LOGGER_VARS);
}

#[test]
fn the_processor_gets_every_variable_it_reads_and_no_other() {
    assert_env_matches("notification-processor", PROCESSOR_VARS);
}

#[test]
fn each_service_runs_its_own_binary() {
    let file = compose();
    assert_eq!(
        file.keys().iter().filter(|k| **k == "services").count(),
        1,
        "one services: section"
    );
    for (service, binary) in [
        ("event-logger", "event-logger"),
        ("notification-processor", "notification-processor"),
    ] {
        let command = file.at(&["services", service, "command"]);
        let words: Vec<_> = match &command.value {
            Some(inline) => inline
                .trim_matches(['[', ']'])
                .split(',')
                .map(unquote)
                .collect(),
            None => command
                .children
                .iter()
                .filter_map(|c| c.value.clone())
                .collect(),
        };
        assert_eq!(words, [binary], "services.{service}.command");
        assert_eq!(file.scalar(&["services", service, "build"]), ".");
    }
}

#[test]
fn the_services_are_wired_to_each_other() {
    let file = compose();
    let logger = ["services", "event-logger", "environment"];
    let processor = ["services", "notification-processor", "environment"];
    let at = |path: &[&str], key: &str| file.scalar(&[path, &[key]].concat());

    assert_eq!(at(&logger, "HOST"), "0.0.0.0");
    assert_eq!(at(&logger, "PORT"), "8000");
    assert_eq!(at(&processor, "API_URL"), "http://event-logger:8000");
    let ports = file.at(&["services", "event-logger", "ports"]);
    assert!(
        ports
            .children
            .iter()
            .any(|p| p.value.as_deref().is_some_and(|v| v.ends_with(":8000"))),
        "event-logger publishes port 8000"
    );

    // Both binaries talk to the same broker, exchange and queue, with the broker's credentials.
    let user = file.scalar(&[
        "services",
        "rabbitmq",
        "environment",
        "RABBITMQ_DEFAULT_USER",
    ]);
    let pass = file.scalar(&[
        "services",
        "rabbitmq",
        "environment",
        "RABBITMQ_DEFAULT_PASS",
    ]);
    let expected = format!("amqp://{user}:{pass}@rabbitmq:5672/%2f");
    for env in [logger, processor] {
        assert_eq!(at(&env, "AMQP_URL"), expected, "{env:?}");
        for key in ["AMQP_EXCHANGE", "AMQP_QUEUE", "API_TOKEN", "LOG_LEVEL"] {
            assert_eq!(
                at(&env, key),
                at(&logger, key),
                "{key} differs between services"
            );
        }
    }
}

#[test]
fn the_start_order_and_health_checks_are_right() {
    let file = compose();
    let services = file.at(&["services"]);
    assert_eq!(
        services.keys().into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["rabbitmq", "event-logger", "notification-processor"])
    );
    let image = file.scalar(&["services", "rabbitmq", "image"]);
    let version = image
        .strip_prefix("rabbitmq:")
        .and_then(|tag| tag.split(['.', '-']).next())
        .and_then(|major| major.parse::<u32>().ok());
    assert!(
        version.is_some_and(|v| v >= 3) && image.contains("management"),
        "{image}"
    );
    let rabbit_check = file.at(&["services", "rabbitmq", "healthcheck", "test"]);
    assert!(
        rabbit_check
            .value
            .as_deref()
            .unwrap_or_default()
            .contains("rabbitmq-diagnostics")
            || rabbit_check
                .children
                .iter()
                .any(|c| c.value.as_deref() == Some("rabbitmq-diagnostics")),
        "rabbitmq healthcheck uses rabbitmq-diagnostics -q ping"
    );
    assert_eq!(
        file.scalar(&["services", "rabbitmq", "hostname"]),
        "rabbitmq"
    );
    let volume = file.at(&["services", "rabbitmq", "volumes"]).children[0]
        .value
        .clone()
        .unwrap_or_default();
    let (name, target) = volume.split_once(':').unwrap_or_default();
    assert_eq!(target, "/var/lib/rabbitmq");
    file.at(&["volumes", name]);

    let logger_check = file.at(&["services", "event-logger", "healthcheck", "test"]);
    let words: Vec<_> = logger_check
        .children
        .iter()
        .filter_map(|c| c.value.clone())
        .collect();
    assert_eq!(words, ["CMD", "event-logger", "--healthcheck"]);

    for (service, deps) in [
        ("event-logger", &["rabbitmq"][..]),
        ("notification-processor", &["rabbitmq", "event-logger"][..]),
    ] {
        for dep in deps {
            assert_eq!(
                file.scalar(&["services", service, "depends_on", dep, "condition"]),
                "service_healthy",
                "{service} waits for {dep}"
            );
        }
    }
    let processor = file.at(&["services", "notification-processor"]);
    assert!(
        processor.get("container_name").is_none(),
        "would block --scale"
    );
    assert!(processor.get("ports").is_none(), "would block --scale");
    assert_eq!(
        file.scalar(&["services", "notification-processor", "restart"]),
        "unless-stopped"
    );
    assert_eq!(
        file.scalar(&[
            "services",
            "notification-processor",
            "healthcheck",
            "disable"
        ]),
        "true",
        "the image's HEALTHCHECK is the logger's"
    );
}

/// `20s`, `1m30s`, `500ms` as seconds.
fn duration_secs(text: &str) -> f64 {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&u) = chars.peek().filter(|u| u.is_ascii_alphabetic()) {
            unit.push(u);
            chars.next();
        }
        let n: f64 = number
            .parse()
            .unwrap_or_else(|_| panic!("bad duration {text:?}"));
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => panic!("bad duration unit in {text:?}"),
        };
        number.clear();
    }
    assert!(number.is_empty(), "duration {text:?} needs a unit");
    total
}

#[test]
fn stop_grace_periods_outlast_the_shutdown_timeouts() {
    let file = compose();
    for service in ["event-logger", "notification-processor"] {
        let timeout: f64 = file
            .scalar(&["services", service, "environment", "SHUTDOWN_TIMEOUT_SECS"])
            .parse()
            .expect("SHUTDOWN_TIMEOUT_SECS is a literal number, so it can be compared");
        let grace = duration_secs(&file.scalar(&["services", service, "stop_grace_period"]));
        assert!(
            grace >= timeout + 5.0,
            "{service}: stop_grace_period {grace}s must exceed SHUTDOWN_TIMEOUT_SECS {timeout}s"
        );
    }
    assert_eq!(duration_secs("1m30s"), 90.0);
}

#[test]
fn the_dockerfile_builds_and_runs_as_the_issue_says() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let from: Vec<_> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: builder and runtime");
    assert!(from[0].starts_with("FROM rust:1.") && from[0].contains("-bookworm AS builder"));
    assert!(from[1].starts_with("FROM debian:bookworm-slim"));
    let text = lines.join("\n");
    for needle in [
        "COPY vendor/ vendor/",
        "cargo build --release --locked --bins",
        "HOST=0.0.0.0",
        "EXPOSE 8000",
        "CMD [\"event-logger\", \"--healthcheck\"]",
        "CMD [\"event-logger\"]",
    ] {
        assert!(text.contains(needle), "Dockerfile lacks {needle:?}");
    }
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the runtime stage");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    // The build context must not carry target/ or .git.
    let ignore = read(".dockerignore");
    for entry in [".git", "**/target"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}
