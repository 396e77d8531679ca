//! Runs every data-driven HTTP case in `fixtures/*.json` against a real server.
//!
//! A fixture file holds `{"description", "settings"?, "cases": [...]}`; each file gets a fresh
//! server (with `settings.api_token` if given) and its cases run in order. A case:
//! `{"name", "method", "path", "body"? (JSON) | "raw_body"? (string), "headers"? {..},
//! "status", "json"? (expected subset), "headers_expected"? {..}, "save"? {"var": "/pointer"},
//! "save_headers"? {"var": "Header-Name"}}`. A `304` must have an empty body (no JSON checks).
//!
//! Matching: objects match when every expected key matches; arrays need the same length and
//! matching elements; strings `"$uuid"`, `"$timestamp"`, `"$any"` match any value of that kind;
//! a header expected as `"$absent"` must be missing. `{var}` in paths, bodies and expectations
//! is replaced by values saved from earlier responses of the same file. `"eventually": true`
//! retries a case until it passes (at most 5 s).
//!
//! Each case is a test of its own, named `fixtures::<file stem>::<case name>` (so a failure names
//! its case, and `cargo test --test logger -- 'fixtures::auth::wrong token'` runs one). A file's
//! cases depend on each other (saved values), so the first of them to run runs the whole file,
//! in order, on one server; every case then reports its own result from that run.
//!
//! Every file runs three times: in memory (`fixtures::…`), with a fresh `DATA_DIR`
//! (`fixtures_on_disk::…`, `SYNC=off`: the answers must not depend on where events live), and
//! through a real nginx with a keep-alive upstream (`fixtures_via_nginx::…`, ignored when nginx
//! is not installed outside CI).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use event_notification::shared::env::Secret;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::common::app::spawn_app_with;
use crate::common::datadir::DataDir;
use crate::common::http::Client;
use crate::common::nginx::{Nginx, nginx_binary};

/// One way of running every fixture file.
#[derive(Clone, Copy)]
struct Mode {
    /// The prefix of its tests' names.
    prefix: &'static str,
    /// Whether the server keeps its events in a `DATA_DIR`.
    on_disk: bool,
    /// Whether the cases go through nginx.
    via_nginx: bool,
}

const MODES: [Mode; 3] = [
    Mode {
        prefix: "fixtures",
        on_disk: false,
        via_nginx: false,
    },
    Mode {
        prefix: "fixtures_on_disk",
        on_disk: true,
        via_nginx: false,
    },
    Mode {
        prefix: "fixtures_via_nginx",
        on_disk: false,
        via_nginx: true,
    },
];

/// One test per case of every `fixtures/*.json`; one failing test for a file that cannot be
/// read, a case without a unique name, or no fixture at all.
pub fn cases() -> Vec<Trial> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        let why = format!("no fixtures in {}", dir.display());
        return vec![Trial::test("fixtures", move || Err(why.into()))];
    }
    let mut trials = Vec::new();
    for file in &files {
        let stem = file.file_stem().unwrap_or_default().to_string_lossy();
        let fixture = match load(file) {
            Ok(fixture) => fixture,
            Err(why) => {
                trials.push(Trial::test(format!("fixtures::{stem}"), move || {
                    Err(why.into())
                }));
                continue;
            }
        };
        let names: Vec<Option<String>> = fixture["cases"]
            .as_array()
            .map(|cases| {
                cases
                    .iter()
                    .map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for mode in MODES {
            let run = Arc::new(FileRun {
                fixture: fixture.clone(),
                mode,
                results: OnceLock::new(),
            });
            trials.extend(file_trials(&stem, &names, run));
        }
    }
    trials
}

/// One trial per case of a file, named `<mode prefix>::<file>::<case>`.
fn file_trials(stem: &str, names: &[Option<String>], run: Arc<FileRun>) -> Vec<Trial> {
    let prefix = run.mode.prefix;
    let missing_nginx = run.mode.via_nginx && nginx_binary().is_none();
    let mut trials = Vec::new();
    let mut seen = HashSet::new();
    for (i, name) in names.iter().cloned().enumerate() {
        let (name, problem) = match name {
            Some(name) if seen.insert(name.clone()) => (name, None),
            Some(name) => (
                format!("{name} (case {})", i + 1),
                Some(format!("case {} repeats the name {name:?}", i + 1)),
            ),
            None => (
                format!("case {}", i + 1),
                Some(format!("case {} has no name", i + 1)),
            ),
        };
        let run = run.clone();
        let trial = Trial::test(format!("{prefix}::{stem}::{name}"), move || match problem {
            Some(why) => Err(why.into()),
            None => run.result(i),
        });
        trials.push(trial.with_ignored_flag(missing_nginx));
    }
    trials
}

fn load(file: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let fixture: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid JSON: {e}", file.display()))?;
    if !fixture["cases"].is_array() {
        return Err(format!("{}: cases is not an array", file.display()));
    }
    Ok(fixture)
}

/// A fixture file and, once one of its cases ran, the results of all of them.
struct FileRun {
    fixture: Value,
    mode: Mode,
    results: OnceLock<Vec<Result<(), String>>>,
}

impl FileRun {
    fn result(&self, case: usize) -> Result<(), Failed> {
        let results = self
            .results
            .get_or_init(|| run_file(&self.fixture, self.mode));
        results[case].clone().map_err(Failed::from)
    }
}

/// Runs every case of `fixture` in order on a fresh server; one result per case.
fn run_file(fixture: &Value, mode: Mode) -> Vec<Result<(), String>> {
    let token = fixture["settings"]["api_token"].as_str().map(str::to_owned);
    let dir = mode.on_disk.then(|| DataDir::new("fixtures"));
    let app = spawn_app_with(|s| {
        if let Some(dir) = &dir {
            s.data_dir = Some(dir.path().to_owned());
            s.sync = event_notification::logger::storage::Sync::Off;
        }
        s.api_token = token.map(Secret::new);
        if let Some(n) = fixture["settings"]["max_body_bytes"].as_u64() {
            s.max_body_bytes = n as usize;
        }
    });
    let nginx = mode.via_nginx.then(|| {
        let binary = nginx_binary().expect("checked when the trials were made");
        Nginx::start(&binary, app.addr)
    });
    let client = match &nginx {
        Some(nginx) => Client::new(nginx.addr),
        None => Client::new(app.addr),
    };
    let mut vars: HashMap<String, String> = HashMap::new();
    let cases = fixture["cases"].as_array().expect("checked by load");
    let results = cases
        .iter()
        .map(|case| run_case(&client, case, &mut vars))
        .collect();
    // Stopped before its directory goes.
    drop(nginx);
    drop(app);
    results
}

fn substitute(text: &str, vars: &HashMap<String, String>) -> String {
    vars.iter().fold(text.to_owned(), |acc, (k, v)| {
        acc.replace(&format!("{{{k}}}"), v)
    })
}

fn substitute_json(value: &Value, vars: &HashMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(substitute(s, vars)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute_json(v, vars)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute_json(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Runs a case; with `"eventually": true` it is retried for up to 5 s until it passes (for
/// effects of the notifier thread, which runs after the response).
fn run_case(app: &Client, case: &Value, vars: &mut HashMap<String, String>) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let result = try_case(app, case, vars);
        if result.is_ok() || case["eventually"] != Value::Bool(true) {
            return result;
        }
        if std::time::Instant::now() > deadline {
            return result.map_err(|why| format!("still failing after 5 s: {why}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn try_case(app: &Client, case: &Value, vars: &mut HashMap<String, String>) -> Result<(), String> {
    let method = case["method"].as_str().ok_or("case has no method")?;
    let path = substitute(case["path"].as_str().ok_or("case has no path")?, vars);
    let body: Option<Vec<u8>> = if let Some(raw) = case.get("raw_body") {
        Some(substitute(raw.as_str().ok_or("raw_body must be a string")?, vars).into_bytes())
    } else {
        case.get("body")
            .map(|b| substitute_json(b, vars).to_string().into_bytes())
    };
    let headers: Vec<(String, String)> = case["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), substitute(v.as_str().unwrap_or(""), vars)))
                .collect()
        })
        .unwrap_or_default();
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let response = app.request(method, &path, &header_refs, body.as_deref());
    let text = String::from_utf8_lossy(&response.body).into_owned();

    let expected_status = case["status"].as_u64().ok_or("case has no status")?;
    if u64::from(response.status) != expected_status {
        return Err(format!(
            "{method} {path}: status {} (expected {expected_status}); body {text}",
            response.status
        ));
    }
    // Header values first: a 304 has nothing else to save.
    if let Some(save) = case["save_headers"].as_object() {
        for (var, name) in save {
            let name = name.as_str().unwrap_or("");
            let value = response
                .header(name)
                .ok_or(format!("cannot save {var}: no {name} header"))?;
            vars.insert(var.clone(), value.to_owned());
        }
    }
    if expected_status == 304 {
        if !response.body.is_empty() {
            return Err(format!("a 304 with a body: {text}"));
        }
        return check_headers(case, &response, vars);
    }
    let content_type = response.header("Content-Type").unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(format!("Content-Type is {content_type:?}, not JSON"));
    }
    let actual: Value =
        serde_json::from_str(&text).map_err(|e| format!("body is not JSON ({e}): {text}"))?;
    // Saved first, so that a case's own expectations can use what it saves (its Location).
    if let Some(save) = case["save"].as_object() {
        for (var, field) in save {
            let field = field.as_str().unwrap_or("");
            let value = actual
                .pointer(field)
                .and_then(Value::as_str)
                .ok_or(format!("cannot save {var}: no string at {field}"))?;
            vars.insert(var.clone(), value.to_owned());
        }
    }
    if let Some(expected) = case.get("json") {
        let expected = substitute_json(expected, vars);
        matches(&expected, &actual, "$")
            .map_err(|why| format!("{method} {path}: {why}; body {text}"))?;
    }
    check_headers(case, &response, vars)
}

fn check_headers(
    case: &Value,
    response: &crate::common::http::TestResponse,
    vars: &HashMap<String, String>,
) -> Result<(), String> {
    if let Some(expected) = case["headers_expected"].as_object() {
        for (name, value) in expected {
            let want = substitute(value.as_str().unwrap_or(""), vars);
            match (response.header(name), want.as_str()) {
                (None, "$absent") => {}
                (Some(got), "$absent") => {
                    return Err(format!("header {name}: {got:?}, expected absent"));
                }
                (Some(got), "$any") if !got.is_empty() => {}
                (Some(got), want) if got == want => {}
                (got, want) => return Err(format!("header {name}: {got:?}, expected {want:?}")),
            }
        }
    }
    Ok(())
}

fn matches(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(s), _) if s == "$any" => Ok(()),
        (Value::String(s), Value::String(a)) if s == "$uuid" => uuid::Uuid::parse_str(a)
            .map(|_| ())
            .map_err(|_| format!("{at}: {a:?} is not a UUID")),
        (Value::String(s), Value::String(a)) if s == "$timestamp" => {
            let ok = a.len() == 27
                && a.ends_with('Z')
                && time::OffsetDateTime::parse(a, &time::format_description::well_known::Rfc3339)
                    .is_ok();
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{at}: {a:?} is not an RFC 3339 UTC timestamp with microseconds"
                ))
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let got = a.get(k).ok_or(format!("{at}.{k}: missing"))?;
                matches(v, got, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{at}: {} items, expected {}", a.len(), e.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{at}: {a}, expected {e}")),
    }
}
