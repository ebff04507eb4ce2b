//! A JSON member whose shape depends on the API (`requestParameters`, `responseElements`,
//! `additionalEventData`), kept as its text and parsed into a [`Value`] only the first time a
//! detector looks inside. Most events are never looked into, so most never pay for the tree.

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

/// Deepest nesting a member may have: what a record parsed on its own allowed before members
/// were kept as text (serde_json's limit of 128 containers, one taken by the record), so an
/// event refused then is refused now, and a kept member always parses.
pub const MAX_DEPTH: usize = 126;

static NULL: Value = Value::Null;

/// A JSON value held as text until first read; `null` and absent are the same ([`Value::Null`]).
#[derive(Default)]
pub struct LazyJson {
    /// The member's JSON text; `None` when absent, `null`, or already replaced by a value.
    text: Option<Box<str>>,
    /// The parsed value, filled on first read (or at once when built from a [`Value`]).
    parsed: OnceLock<Value>,
}

impl LazyJson {
    /// An absent member.
    pub fn null() -> Self {
        Self::default()
    }

    /// A member from its JSON text, which the caller has already checked is one JSON value
    /// (e.g. a `serde_json::value::RawValue`); `null` counts as absent.
    pub fn from_text(text: &str) -> Self {
        let text = text.trim();
        if text.is_empty() || text == "null" {
            return Self::default();
        }
        Self {
            text: Some(text.into()),
            parsed: OnceLock::new(),
        }
    }

    /// The value, parsed now if it has not been yet ([`Value::Null`] when absent).
    pub fn value(&self) -> &Value {
        let Some(text) = &self.text else {
            return self.parsed.get().unwrap_or(&NULL);
        };
        self.parsed.get_or_init(|| {
            serde_json::from_str(text).unwrap_or_else(|e| {
                // The reader keeps only text that passed `member_fault`, so this is text
                // given to `from_text` by hand.
                tracing::warn!(error = %e, "CloudTrail member unreadable as JSON; treated as null");
                Value::Null
            })
        })
    }

    /// The value, for changing it (tests and tools that build events by hand).
    pub fn value_mut(&mut self) -> &mut Value {
        self.value();
        // Once changed, the text no longer describes the value.
        self.text = None;
        if self.parsed.get().is_none() {
            let _ = self.parsed.set(Value::Null);
        }
        self.parsed
            .get_mut()
            .unwrap_or_else(|| unreachable!("set just above"))
    }

    /// Member `key` of an object value (`None` for other values), as [`Value::get`].
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.value().get(key)
    }

    /// Whether the member was absent or `null`. Does not parse.
    pub fn is_null(&self) -> bool {
        match &self.text {
            Some(_) => false,
            None => self.parsed.get().is_none_or(Value::is_null),
        }
    }

    /// The member's JSON text when it is still held as text.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

impl From<Value> for LazyJson {
    fn from(v: Value) -> Self {
        Self {
            text: None,
            parsed: OnceLock::from(v),
        }
    }
}

impl Clone for LazyJson {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            parsed: self.parsed.clone(),
        }
    }
}

impl PartialEq for LazyJson {
    fn eq(&self, other: &Self) -> bool {
        match (&self.text, &other.text) {
            (Some(a), Some(b)) if a == b => true,
            _ => self.value() == other.value(),
        }
    }
}

impl PartialEq<Value> for LazyJson {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl fmt::Debug for LazyJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.text, self.parsed.get()) {
            (_, Some(v)) => write!(f, "{v}"),
            (Some(t), None) => f.write_str(t),
            (None, None) => f.write_str("null"),
        }
    }
}

/// What would make a member's text unreadable when a detector first looks inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFault {
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A number beyond f64's range, which serde_json's value parser refuses.
    NumberOutOfRange,
}

/// Checks `text` (one JSON value, already checked as JSON syntax) for what serde_json's value
/// parser would refuse in it, so the event is refused while its file and position are known
/// rather than when a detector reads the member. One pass: strings are skipped with `memchr`,
/// and only numbers long enough or with an exponent are parsed.
pub fn member_fault(text: &str) -> Option<MemberFault> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                i = string_end(bytes, i + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(MemberFault::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    i += 1;
                }
                if !number_fits(text.get(start..i).unwrap_or_default()) {
                    return Some(MemberFault::NumberOutOfRange);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where the string whose contents start at `from` ends (just past its closing quote).
fn string_end(bytes: &[u8], mut from: usize) -> usize {
    loop {
        let Some(rest) = bytes.get(from..) else {
            return bytes.len();
        };
        match memchr::memchr2(b'"', b'\\', rest) {
            None => return bytes.len(),
            // An escape: skip the escaped byte (`\u` escapes are plain bytes after it).
            Some(k) if rest.get(k) == Some(&b'\\') => from += k + 2,
            Some(k) => return from + k + 1,
        }
    }
}

/// Whether the JSON number `token` is within f64's range. Only an exponent or more digits
/// than f64's largest value has can leave it, so short plain numbers are not parsed.
fn number_fits(token: &str) -> bool {
    if token.len() <= 300 && !token.bytes().any(|c| c | 0x20 == b'e') {
        return true;
    }
    token.parse::<f64>().map_or(true, f64::is_finite)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_is_parsed_on_first_read_and_compares_by_value() {
        let lazy = LazyJson::from_text(r#" {"bucketName": "b", "n": [1, 2]} "#);
        assert!(!lazy.is_null());
        assert_eq!(lazy.text(), Some(r#"{"bucketName": "b", "n": [1, 2]}"#));
        assert_eq!(lazy.get("bucketName").and_then(Value::as_str), Some("b"));
        assert_eq!(lazy, json!({"bucketName": "b", "n": [1, 2]}));
        assert_eq!(
            lazy,
            LazyJson::from(json!({"n": [1, 2], "bucketName": "b"}))
        );
        assert_ne!(lazy, LazyJson::null());
    }

    #[test]
    fn null_and_absent_are_the_same() {
        assert!(LazyJson::from_text("null").is_null());
        assert!(LazyJson::null().is_null());
        assert!(LazyJson::from(Value::Null).is_null());
        assert_eq!(LazyJson::from_text("null"), LazyJson::null());
        assert!(LazyJson::null().value().is_null());
        assert_eq!(LazyJson::null().get("x"), None);
    }

    #[test]
    fn a_changed_value_drops_its_text() {
        let mut lazy = LazyJson::from_text(r#"{"a": 1}"#);
        lazy.value_mut()["b"] = json!(2);
        assert_eq!(lazy.text(), None);
        assert_eq!(lazy, json!({"a": 1, "b": 2}));
        let mut empty = LazyJson::null();
        *empty.value_mut() = json!({"c": 3});
        assert!(!empty.is_null());
        assert_eq!(empty.get("c"), Some(&json!(3)));
    }

    #[test]
    fn unreadable_text_reads_as_null() {
        // Out of f64's range: valid JSON syntax that serde_json's value parser refuses.
        let lazy = LazyJson::from_text(r#"{"x": 1e400}"#);
        assert!(lazy.value().is_null());
    }

    #[test]
    fn depth_counts_containers_but_not_brackets_in_strings() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(
            member_fault(&deep(MAX_DEPTH + 1)),
            Some(MemberFault::TooDeep)
        );
        assert_eq!(member_fault(&deep(MAX_DEPTH)), None);
        assert!(
            serde_json::from_str::<Value>(&deep(MAX_DEPTH)).is_ok(),
            "a kept member parses"
        );
        // Brackets in strings, escaped quotes included, are not nesting.
        let in_strings = format!(
            r#"{{"a": "{}\"{}", "b": []}}"#,
            "[".repeat(200),
            "{".repeat(200)
        );
        assert_eq!(member_fault(&in_strings), None);
        let after_escape = format!(r#"{{"a": "\\", "b": {}}}"#, deep(MAX_DEPTH));
        assert_eq!(member_fault(&after_escape), Some(MemberFault::TooDeep));
    }

    #[test]
    fn numbers_are_refused_exactly_where_the_value_parser_refuses_them() {
        let long = |digits: usize| format!("1{}", "0".repeat(digits - 1));
        let cases = [
            "1e400".to_owned(),
            "-1E+309".to_owned(),
            "1e308".to_owned(),
            "1.7976931348623157e308".to_owned(),
            "1.7976931348623159e308".to_owned(),
            "1e-400".to_owned(),
            "0.000001e-320".to_owned(),
            "123456789012345678901234567890".to_owned(),
            long(309),
            long(310),
            format!("-{}", long(400)),
            format!("0.{}", "1".repeat(400)),
            r#""1e400""#.to_owned(),
            r#"{"true": true, "e": [1e400]}"#.to_owned(),
            r#"{"x": "\"", "y": 2e999}"#.to_owned(),
        ];
        for case in cases {
            let parser_refuses = serde_json::from_str::<Value>(&case).is_err();
            assert_eq!(
                member_fault(&case) == Some(MemberFault::NumberOutOfRange),
                parser_refuses,
                "{case:.60}"
            );
        }
        // Around the edge of the range, every way of writing a number.
        let mut sweep = Vec::new();
        for exp in 300..=330 {
            for mantissa in ["1", "9.99", "0.5", "17.976931348623157", "-1.8"] {
                sweep.push(format!("{mantissa}e{exp}"));
                sweep.push(format!("{mantissa}E+{exp}"));
                sweep.push(format!("{mantissa}e-{exp}"));
            }
        }
        for digits in 300..=320 {
            sweep.push(long(digits));
            sweep.push(format!("{}.5", "9".repeat(digits)));
        }
        for case in sweep {
            let parser_refuses = serde_json::from_str::<Value>(&case).is_err();
            assert_eq!(member_fault(&case).is_some(), parser_refuses, "{case:.60}");
        }
        assert_eq!(
            member_fault(r#"{"x": 1e400}"#),
            Some(MemberFault::NumberOutOfRange)
        );
    }
}
