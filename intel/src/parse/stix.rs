//! STIX 2.0/2.1 JSON (GuardDuty `STIX`): a bundle (or array) of objects whose `indicator`s carry
//! patterns such as `[ipv4-addr:value = '198.51.100.1' OR domain-name:value = 'evil.example']`.
//!
//! `ipv4-addr:value` and `ipv6-addr:value` (`=` or `ISSUBSET`), `domain-name:value` and, when
//! enabled, `url:value` are used; OR-compounds give one entry per comparison. Other observables
//! (file hashes, certificates, e-mail) are counted and skipped, as are AND/FOLLOWEDBY compounds,
//! which a single-value matcher cannot express. Line numbers are those of each indicator's id.

use super::{Collector, Meta, ParseError};
use crate::category::Category;
use crate::indicator::LineProblem;
use serde_json::Value;
use std::collections::HashMap;

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) -> Result<(), ParseError> {
    let file = out.list_file().to_owned();
    let root: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::Json {
        file: file.clone(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let objects: Vec<&Value> = match &root {
        Value::Object(o) => match o.get("objects") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ if o.get("type").and_then(Value::as_str) == Some("indicator") => vec![&root],
            _ => return Err(ParseError::NotStix { file }),
        },
        Value::Array(a) => a.iter().collect(),
        _ => return Err(ParseError::NotStix { file }),
    };
    // Other JSON feeds (OTX pulses, MISP events) are arrays of untyped objects: refuse them rather
    // than load nothing in silence.
    if !objects.is_empty()
        && objects
            .iter()
            .all(|o| o.get("type").and_then(Value::as_str).is_none())
    {
        return Err(ParseError::NotStix { file });
    }
    let lines = id_lines(bytes);
    for obj in objects {
        if out.is_full() {
            break;
        }
        if obj.get("type").and_then(Value::as_str) != Some("indicator") {
            continue;
        }
        indicator(obj, &lines, out);
    }
    Ok(())
}

/// Maps each `indicator--...` id to the line of its first mention, in one pass over the file.
fn id_lines(bytes: &[u8]) -> HashMap<&[u8], u32> {
    const NEEDLE: &[u8] = b"\"indicator--";
    let mut map = HashMap::new();
    let mut line = 1u32;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\n' {
            line = line.saturating_add(1);
        } else if b == b'"' && bytes.get(i..i + NEEDLE.len()) == Some(NEEDLE) {
            let start = i + 1;
            let len = bytes
                .get(start..)
                .and_then(|r| r.iter().position(|&c| c == b'"'));
            if let Some(id) = len.and_then(|n| bytes.get(start..start + n)) {
                map.entry(id).or_insert(line);
                i = start + id.len();
                continue;
            }
        }
        i += 1;
    }
    map
}

fn indicator(obj: &Value, lines: &HashMap<&[u8], u32>, out: &mut Collector<'_>) {
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let line = text("id")
        .and_then(|id| lines.get(id.as_bytes()))
        .copied()
        .unwrap_or(1);
    if obj.get("revoked").and_then(Value::as_bool) == Some(true) {
        out.skip("stix:revoked");
        return;
    }
    if let Some(pt) = text("pattern_type").filter(|t| *t != "stix") {
        out.skip(&format!("stix:pattern_type {pt}"));
        return;
    }
    let Some(pattern) = text("pattern") else {
        out.reject(line, LineProblem::MissingField { field: "pattern" });
        return;
    };
    let description = text("name").or_else(|| text("description")).unwrap_or("");
    let category = text("name")
        .and_then(Category::guess_from_text)
        .or_else(|| text("description").and_then(Category::guess_from_text));
    let meta = Meta {
        category,
        ..Meta::described(description)
    };
    let comparisons = match comparisons(pattern) {
        Ok(c) => c,
        Err(Unusable::Compound) => {
            out.skip("stix:and-compound");
            return;
        }
        Err(Unusable::Malformed(why)) => {
            out.reject(
                line,
                LineProblem::BadPattern {
                    pattern: super::cut(pattern),
                    why,
                },
            );
            return;
        }
    };
    for c in comparisons {
        match (c.object, c.property, c.op) {
            ("ipv4-addr" | "ipv6-addr", "value", "=" | "ISSUBSET") => {
                out.add_address(line, &c.value, meta);
            }
            ("domain-name", "value", "=") => out.add_domain(line, &c.value, meta),
            ("url", "value", "=") => out.add_url(line, &c.value, "stix:url", meta),
            (object, ..) => out.skip(&format!("stix:{object}")),
        }
    }
}

/// Why a pattern yields nothing.
enum Unusable {
    /// AND / FOLLOWEDBY / NOT: the indicator needs more than one observation to match.
    Compound,
    /// The pattern could not be read.
    Malformed(&'static str),
}

/// One `object:property op 'value'` comparison.
struct Comparison<'p> {
    object: &'p str,
    property: &'p str,
    op: &'p str,
    value: String,
}

/// A pattern token: unquoted word or quoted string literal.
enum Tok<'p> {
    Word(&'p str),
    Str(String),
}

const OPERATORS: &[&str] = &[
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "IN",
    "LIKE",
    "MATCHES",
    "ISSUBSET",
    "ISSUPERSET",
];

fn tokens(pattern: &str) -> Result<Vec<Tok<'_>>, Unusable> {
    let mut toks = Vec::new();
    let mut rest = pattern;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || "[]()".contains(c));
        let Some(first) = rest.chars().next() else {
            return Ok(toks);
        };
        if first == '\'' {
            let mut value = String::new();
            let mut chars = rest.char_indices().skip(1);
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => value.push(e),
                        None => return Err(Unusable::Malformed("dangling escape")),
                    },
                    '\'' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let Some(end) = end else {
                return Err(Unusable::Malformed("unterminated string"));
            };
            toks.push(Tok::Str(value));
            rest = rest.get(end..).unwrap_or("");
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || "[]()'".contains(c))
                .unwrap_or(rest.len());
            let (word, tail) = rest.split_at(end);
            toks.push(Tok::Word(word));
            rest = tail;
        }
    }
}

fn comparisons(pattern: &str) -> Result<Vec<Comparison<'_>>, Unusable> {
    let toks = tokens(pattern)?;
    if toks
        .iter()
        .any(|t| matches!(t, Tok::Word(w) if matches!(*w, "AND" | "FOLLOWEDBY" | "NOT")))
    {
        return Err(Unusable::Compound);
    }
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(tok) = toks.get(i) {
        i += 1;
        let Tok::Word(word) = tok else { continue };
        let Some((object, property)) = word.split_once(':') else {
            continue;
        };
        // The value is the first string literal that follows an operator.
        let mut j = i;
        let mut op = None;
        while let Some(t) = toks.get(j) {
            match t {
                Tok::Word(w) if OPERATORS.contains(w) => op = Some(*w),
                Tok::Str(v) if op.is_some() => {
                    found.push(Comparison {
                        object,
                        property,
                        op: op.unwrap_or("="),
                        value: v.clone(),
                    });
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        if op.is_none() {
            return Err(Unusable::Malformed("comparison without operator"));
        }
        i = j + 1;
    }
    if found.is_empty() {
        return Err(Unusable::Malformed("no comparison found"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &str) -> Vec<(String, String, String)> {
        match comparisons(p) {
            Ok(c) => c
                .into_iter()
                .map(|c| {
                    (
                        format!("{}:{}", c.object, c.property),
                        c.op.to_owned(),
                        c.value,
                    )
                })
                .collect(),
            Err(Unusable::Compound) => vec![("compound".into(), String::new(), String::new())],
            Err(Unusable::Malformed(w)) => vec![("malformed".into(), w.into(), String::new())],
        }
    }

    #[test]
    fn or_compounds_give_one_comparison_each() {
        let got = parts("[domain-name:value = 'a.example' OR ipv4-addr:value = '60.10.1.120']");
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            ("domain-name:value".into(), "=".into(), "a.example".into())
        );
        assert_eq!(
            got[1],
            ("ipv4-addr:value".into(), "=".into(), "60.10.1.120".into())
        );
    }

    #[test]
    fn quoted_keys_and_escapes_are_read() {
        let got = parts("[file:hashes.'SHA-256' = 'ab\\'c']");
        assert_eq!(
            got,
            vec![("file:hashes.".into(), "=".into(), "ab'c".into())]
        );
    }

    #[test]
    fn and_compounds_are_unusable_and_broken_patterns_malformed() {
        let and = "[x509-certificate:issuer = 'CN=A' AND x509-certificate:serial_number = '0e']";
        assert_eq!(parts(and)[0].0, "compound");
        assert_eq!(parts("[ipv4-addr:value = '1.2.3.4]")[0].0, "malformed");
        assert_eq!(parts("[ipv4-addr:value]")[0].0, "malformed");
        assert_eq!(parts("[]")[0].0, "malformed");
    }
}
