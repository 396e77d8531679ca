//! The one route table of the API: every path, the endpoints it takes, and which need the
//! token. The router ([`match_path`]), the `405` answer's `Allow` header and the OpenAPI
//! document's paths are all read from [`ROUTES`], so a route added here appears in all three,
//! and the compiler asks for its handler (`api::Api::handle`) and its documentation
//! (`openapi::paths::operation`), which match on [`Endpoint`] exhaustively.

/// One operation of the API: a method on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Ping,
    Health,
    Metrics,
    ListEvents,
    CreateEvent,
    GetEvent,
    PutEvent,
    PatchEvent,
    OpenApi,
    Docs,
}

impl Endpoint {
    pub(crate) fn method(self) -> &'static str {
        match self {
            Endpoint::CreateEvent => "POST",
            Endpoint::PutEvent => "PUT",
            Endpoint::PatchEvent => "PATCH",
            Endpoint::Ping
            | Endpoint::Health
            | Endpoint::Metrics
            | Endpoint::ListEvents
            | Endpoint::GetEvent
            | Endpoint::OpenApi
            | Endpoint::Docs => "GET",
        }
    }
}

/// A path and what it takes.
#[derive(Debug)]
pub(crate) struct Route {
    /// The path as OpenAPI writes it: literal segments and `{name}` for one segment.
    pub(crate) path: &'static str,
    pub(crate) endpoints: &'static [Endpoint],
    /// Whether the bearer token (`API_TOKEN`) is asked for.
    pub(crate) needs_token: bool,
    /// Whether every path below this one is served too (the `/docs` assets), undocumented.
    pub(crate) with_subpaths: bool,
}

impl Route {
    /// The `Allow` header of a `405` on this path.
    pub(crate) fn allow(&self) -> String {
        let methods: Vec<&str> = self.endpoints.iter().map(|e| e.method()).collect();
        methods.join(", ")
    }

    /// The route in metrics labels: its path with `:name` for a `{name}` segment, since
    /// some Prometheus text parsers (prometheus-parse, for one) drop samples whose label values
    /// hold braces.
    pub(crate) fn metrics_label(&self) -> &'static str {
        match self.path {
            "/events/{event_id}" => "/events/:event_id",
            path => path,
        }
    }

    pub(crate) fn endpoint(&self, method: &str) -> Option<Endpoint> {
        self.endpoints
            .iter()
            .copied()
            .find(|e| e.method() == method)
    }
}

const fn route(path: &'static str, endpoints: &'static [Endpoint], needs_token: bool) -> Route {
    Route {
        path,
        endpoints,
        needs_token,
        with_subpaths: false,
    }
}

pub(crate) const ROUTES: &[Route] = &[
    route("/ping", &[Endpoint::Ping], false),
    route("/health", &[Endpoint::Health], false),
    route("/metrics", &[Endpoint::Metrics], false),
    route(
        "/events",
        &[Endpoint::ListEvents, Endpoint::CreateEvent],
        true,
    ),
    route(
        "/events/{event_id}",
        &[Endpoint::GetEvent, Endpoint::PutEvent, Endpoint::PatchEvent],
        true,
    ),
    route("/openapi.json", &[Endpoint::OpenApi], false),
    Route {
        with_subpaths: true,
        ..route("/docs", &[Endpoint::Docs], false)
    },
];

/// A matched path: its route and what its variable part held.
#[derive(Debug)]
pub(crate) struct Matched {
    pub(crate) route: &'static Route,
    /// The `{name}` segment, or for a route with subpaths the rest after it ("" for itself).
    pub(crate) param: String,
}

/// Matches a (percent-decoded) path, ignoring one trailing slash.
pub(crate) fn match_path(path: &str) -> Option<Matched> {
    let trimmed = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    ROUTES.iter().find_map(|route| {
        if let Some(param) = segments_match(route.path, trimmed) {
            return Some(Matched { route, param });
        }
        let rest = path.strip_prefix(route.path)?.strip_prefix('/')?;
        route.with_subpaths.then(|| Matched {
            route,
            param: rest.to_owned(),
        })
    })
}

/// `Some(param)` when `path` has the template's segments, a `{name}` matching one non-empty
/// segment (returned; empty when the template has none).
fn segments_match(template: &str, path: &str) -> Option<String> {
    let mut param = String::new();
    let mut given = path.split('/');
    for expected in template.split('/') {
        let segment = given.next()?;
        if expected.starts_with('{') {
            if segment.is_empty() {
                return None;
            }
            param = segment.to_owned();
        } else if expected != segment {
            return None;
        }
    }
    given.next().is_none().then_some(param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_and_without_trailing_slash() {
        for (path, matched) in [
            ("/ping", Some(("/ping", ""))),
            ("/ping/", Some(("/ping", ""))),
            ("/events", Some(("/events", ""))),
            ("/events/", Some(("/events", ""))),
            ("/events/abc", Some(("/events/{event_id}", "abc"))),
            ("/events/abc/", Some(("/events/{event_id}", "abc"))),
            ("/docs", Some(("/docs", ""))),
            ("/docs/", Some(("/docs", ""))),
            ("/docs/x.css", Some(("/docs", "x.css"))),
            ("/events/a/b", None),
            ("/events//", None),
            ("/", None),
            ("/pingx", None),
        ] {
            let got = match_path(path);
            let got = got.as_ref().map(|m| (m.route.path, m.param.as_str()));
            assert_eq!(got, matched, "{path}");
        }
    }

    #[test]
    fn metrics_labels_have_no_braces() {
        for route in ROUTES {
            let label = route.metrics_label();
            assert!(!label.contains(['{', '}']), "{label}");
            assert_eq!(label.replace(":event_id", "{event_id}"), route.path);
        }
    }

    #[test]
    fn allow_lists_every_method_of_the_path() {
        let events = match_path("/events/x").unwrap().route;
        assert_eq!(events.allow(), "GET, PUT, PATCH");
        assert_eq!(match_path("/events").unwrap().route.allow(), "GET, POST");
    }
}
