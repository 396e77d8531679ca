// PATCHED (see PATCHES.md, fix 13): a new file.
//! How long a request's body is, from its `Transfer-Encoding` and `Content-Length` headers,
//! exactly as RFC 9112 §6 says; every other combination is refused, and the connection closed.
//!
//! Upstream took the first `Content-Length` it could parse (ignoring the others and any it
//! could not), and any `Transfer-Encoding` meant chunked: with two lengths, or a length and
//! a coding, part of a body was read as the next request on the connection (request
//! smuggling, when a proxy in front framed it the other way).

use std::convert::TryFrom;

use crate::common::{HTTPVersion, Header};
use crate::head::Refusal;

/// Where a request's body ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// The chunked transfer coding, until its last chunk.
    Chunked,
}

/// The framing of a request with `headers`, or why it cannot be told (§6.1, §6.3).
pub(crate) fn body_framing(version: &HTTPVersion, headers: &[Header]) -> Result<Framing, Refusal> {
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    };
    let refuse = |code, reason: &'static str| Err(Refusal::new(version.clone(), code, reason));
    let mut codings = values("Transfer-Encoding").peekable();
    if codings.peek().is_some() {
        if *version == HTTPVersion(1, 0) {
            // §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            return refuse(400, "Bad Request: Transfer-Encoding in an HTTP/1.0 request");
        }
        if values("Content-Length").next().is_some() {
            return refuse(
                400,
                "Bad Request: Content-Length and Transfer-Encoding together",
            );
        }
        return chunked_only(codings, version);
    }
    let mut length = None;
    for element in values("Content-Length").flat_map(|v| v.split(',')) {
        let element = element.trim_matches(|c| c == ' ' || c == '\t');
        let parsed = match element.bytes().all(|b| b.is_ascii_digit()) && !element.is_empty() {
            true => element
                .parse::<u64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok()),
            false => None,
        };
        match (parsed, length) {
            (None, _) => return refuse(400, "Bad Request: invalid Content-Length"),
            (Some(n), Some(seen)) if n != seen => {
                return refuse(400, "Bad Request: differing Content-Length values")
            }
            (Some(n), _) => length = Some(n),
        }
    }
    Ok(length.map_or(Framing::Empty, Framing::Length))
}

/// The codings of `Transfer-Encoding` (all its fields, in order) must be just `chunked`
/// (§6.3: a final coding other than chunked, `400`; §6.1: a coding we do not implement, `501`).
fn chunked_only<'a>(
    fields: impl Iterator<Item = &'a str>,
    version: &HTTPVersion,
) -> Result<Framing, Refusal> {
    let codings: Vec<&str> = fields
        .flat_map(|v| v.split(','))
        .map(|c| c.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|c| !c.is_empty())
        .collect();
    let is_chunked = |c: &&str| c.eq_ignore_ascii_case("chunked");
    let reason = match codings.split_last() {
        Some((last, [])) if is_chunked(last) => return Ok(Framing::Chunked),
        Some((last, before)) if is_chunked(last) => {
            if before.iter().any(is_chunked) {
                "Bad Request: chunked applied more than once"
            } else {
                let reason = "Not Implemented: only the chunked transfer coding is supported";
                return Err(Refusal::new(version.clone(), 501, reason));
            }
        }
        _ => "Bad Request: the final transfer coding is not chunked",
    };
    Err(Refusal::new(version.clone(), 400, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn framing(version: u8, headers: &[&str]) -> Result<Framing, u16> {
        let headers: Vec<Header> = headers
            .iter()
            .map(|h| Header::from_str(h).unwrap())
            .collect();
        body_framing(&HTTPVersion(1, version), &headers).map_err(|r| r.code)
    }

    #[test]
    fn content_length_is_one_or_more_digits_and_repeats_only_itself() {
        assert_eq!(framing(1, &[]), Ok(Framing::Empty));
        assert_eq!(framing(1, &["Content-Length: 5"]), Ok(Framing::Length(5)));
        assert_eq!(framing(1, &["Content-Length: 007"]), Ok(Framing::Length(7)));
        assert_eq!(framing(0, &["Content-Length: 0"]), Ok(Framing::Length(0)));
        assert_eq!(
            framing(1, &["Content-Length: 5, 5"]),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing(1, &["Content-Length: 5", "content-length: 5"]),
            Ok(Framing::Length(5))
        );
        for bad in [
            &["Content-Length: -1"][..],
            &["Content-Length: +5"],
            &["Content-Length: abc"],
            &["Content-Length: 5 5"],
            &["Content-Length: 0x10"],
            &["Content-Length: "],
            &["Content-Length: 5,"],
            &["Content-Length: 18446744073709551616"],
            &["Content-Length: 5, 6"],
            &["Content-Length: 5", "Content-Length: 6"],
            &["Content-Length: 0", "Content-Length: 50"],
        ] {
            assert_eq!(framing(1, bad), Err(400), "{:?}", bad);
        }
    }

    #[test]
    fn transfer_encoding_must_be_chunked_alone_and_excludes_content_length() {
        assert_eq!(
            framing(1, &["Transfer-Encoding: chunked"]),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing(1, &["Transfer-Encoding: Chunked"]),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing(1, &["Transfer-Encoding: , chunked"]),
            Ok(Framing::Chunked)
        );
        let with_length = ["Transfer-Encoding: chunked", "Content-Length: 4"];
        assert_eq!(framing(1, &with_length), Err(400));
        let length_first = ["Content-Length: 4", "Transfer-Encoding: chunked"];
        assert_eq!(framing(1, &length_first), Err(400));
        assert_eq!(framing(0, &["Transfer-Encoding: chunked"]), Err(400));
        assert_eq!(framing(1, &["Transfer-Encoding: identity"]), Err(400));
        assert_eq!(framing(1, &["Transfer-Encoding: chunked, gzip"]), Err(400));
        assert_eq!(
            framing(1, &["Transfer-Encoding: chunked, chunked"]),
            Err(400)
        );
        assert_eq!(framing(1, &["Transfer-Encoding: "]), Err(400));
        assert_eq!(framing(1, &["Transfer-Encoding: gzip, chunked"]), Err(501));
        let two_fields = ["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"];
        assert_eq!(framing(1, &two_fields), Err(501));
        let twice = ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"];
        assert_eq!(framing(1, &twice), Err(400));
    }
}
