//! Entity tags and the conditional request headers of RFC 9110 §13.1: the `ETag` of an event
//! (its store version, quoted), `If-Match` on `PUT`/`PATCH` and `If-None-Match` on `GET`.

/// The strong entity tag of an event at `version`: `"<version>"`.
pub(crate) fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// One member of an `If-Match`/`If-None-Match` list.
#[derive(Debug, PartialEq, Eq)]
enum Tag<'a> {
    Strong(&'a str),
    Weak(&'a str),
    /// Not an entity tag: never matches.
    Invalid,
}

fn tags(header: &str) -> impl Iterator<Item = Tag<'_>> {
    // An entity tag's opaque part cannot hold a comma or a quote, so splitting is exact.
    header
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (weak, quoted) = match t.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, t),
            };
            match quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .filter(|opaque| !opaque.contains('"'))
            {
                Some(opaque) if weak => Tag::Weak(opaque),
                Some(opaque) => Tag::Strong(opaque),
                None => Tag::Invalid,
            }
        })
}

/// Whether `If-Match: <header>` holds for an existing event at `version`: `*`, or a list
/// holding its tag, compared strongly (a weak tag never matches).
pub(crate) fn if_match(header: &str, version: u64) -> bool {
    if header.trim() == "*" {
        return true;
    }
    let current = version.to_string();
    tags(header).any(|t| t == Tag::Strong(&current))
}

/// Whether `If-None-Match: <header>` fails (`304`) for an existing event at `version`: `*`, or
/// a list holding its tag, compared weakly (`W/"3"` matches `"3"`).
pub(crate) fn none_match_fails(header: &str, version: u64) -> bool {
    if header.trim() == "*" {
        return true;
    }
    let current = version.to_string();
    tags(header).any(|t| matches!(t, Tag::Strong(o) | Tag::Weak(o) if o == current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_the_quoted_version() {
        assert_eq!(etag(1), "\"1\"");
        assert_eq!(etag(42), "\"42\"");
    }

    #[test]
    fn if_match_takes_star_and_lists_and_never_weak_tags() {
        for (header, holds) in [
            ("*", true),
            (" * ", true),
            ("\"3\"", true),
            ("\"1\", \"3\"", true),
            ("\"1\",\"3\" ,\"5\"", true),
            ("\"2\"", false),
            ("W/\"3\"", false),
            ("W/\"1\", W/\"3\"", false),
            ("3", false),
            ("\"3", false),
            ("", false),
            ("\"\"", false),
            ("*, \"1\"", false),
        ] {
            assert_eq!(if_match(header, 3), holds, "{header:?}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly() {
        for (header, fails) in [
            ("*", true),
            ("\"3\"", true),
            ("W/\"3\"", true),
            ("\"1\", W/\"3\"", true),
            ("\"2\"", false),
            ("3", false),
            ("", false),
        ] {
            assert_eq!(none_match_fails(header, 3), fails, "{header:?}");
        }
    }
}
