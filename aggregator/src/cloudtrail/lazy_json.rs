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
                // The reader only keeps text it has parsed as JSON within the depth limit, so
                // this is a number out of f64's range or a value built by hand.
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

/// How deeply `text` (one JSON value) nests arrays and objects. Strings are skipped, escapes
/// included, so brackets inside them do not count.
pub fn nesting_depth(text: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Whether `text` nests deeper than [`MAX_DEPTH`]; only long texts can, so short ones are not
/// scanned.
pub fn too_deep(text: &str) -> bool {
    text.len() > 2 * MAX_DEPTH && nesting_depth(text) > MAX_DEPTH
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
        assert_eq!(nesting_depth(r#"{"a": [1, {"b": "[[[{{"}]}"#), 3);
        assert_eq!(nesting_depth(r#"{"a": "\"[[", "b": []}"#), 2);
        assert_eq!(nesting_depth("1"), 0);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(too_deep(&deep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(!too_deep(&ok));
        assert!(
            serde_json::from_str::<Value>(&ok).is_ok(),
            "a kept member parses"
        );
    }
}
