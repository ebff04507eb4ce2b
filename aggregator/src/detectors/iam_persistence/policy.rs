//! Reading IAM policy documents from CloudTrail request parameters: whether a policy grants
//! everything (`"Action": "*"` on `"Resource": "*"`), and which outside principals a trust
//! policy lets assume a role.
//!
//! CloudTrail gives documents as JSON text, sometimes percent-encoded; anything that does not
//! parse grants nothing (and is reported by the caller as unreadable, never a panic).

use serde_json::Value;

/// A policy document as a JSON value: `raw` itself when it is already an object, else parsed
/// from text (percent-decoded first when it starts with `%`).
pub fn parse_document(raw: &Value) -> Option<Value> {
    match raw {
        Value::Object(_) => Some(raw.clone()),
        Value::String(text) => {
            let text = text.trim();
            let decoded;
            let text = if text.starts_with('%') {
                decoded = percent_decode(text)?;
                decoded.as_str()
            } else {
                text
            };
            serde_json::from_str(text).ok()
        }
        _ => None,
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(if b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The statements of a document (`Statement` may be one object or a list).
fn statements(doc: &Value) -> impl Iterator<Item = &Value> {
    let st = doc.get("Statement");
    let list: &[Value] = match st {
        Some(Value::Array(a)) => a,
        Some(v @ Value::Object(_)) => std::slice::from_ref(v),
        _ => &[],
    };
    list.iter()
        .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"))
}

/// Strings of a field that may be one string or a list of them.
fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether some Allow statement grants every action on every resource.
pub fn grants_full_access(doc: &Value) -> bool {
    statements(doc).any(|s| {
        let all_actions = strings(s.get("Action"))
            .iter()
            .any(|a| *a == "*" || *a == "*:*");
        let all_resources = strings(s.get("Resource")).contains(&"*");
        all_actions && all_resources
    })
}

/// The outside principals an Allow statement of trust policy `doc` names: `*`, or the
/// accounts (12 digits) of AWS principals for which `is_ours` is false.
pub fn outside_trusted(doc: &Value, is_ours: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for s in statements(doc) {
        let principal = s.get("Principal");
        let aws: Vec<&str> = match principal {
            Some(Value::String(p)) => vec![p.as_str()],
            Some(p @ Value::Object(_)) => strings(p.get("AWS")),
            _ => Vec::new(),
        };
        for p in aws {
            let who = if p == "*" {
                Some("*".to_owned())
            } else {
                account_of(p).filter(|a| !is_ours(a)).map(str::to_owned)
            };
            if let Some(who) = who
                && !out.contains(&who)
            {
                out.push(who);
            }
        }
    }
    out
}

/// The account of an AWS principal: a bare 12-digit id or the account field of an ARN.
pub fn account_of(principal: &str) -> Option<&str> {
    let candidate = if principal.starts_with("arn:") {
        principal.split(':').nth(4)?
    } else {
        principal
    };
    (candidate.len() == 12 && candidate.bytes().all(|b| b.is_ascii_digit())).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_on_star_statement_grants_full_access_and_a_scoped_one_does_not() {
        let full = parse_document(&Value::String(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#.into(),
        ))
        .expect("doc");
        assert!(grants_full_access(&full));
        let scoped = parse_document(&Value::String(
            r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#.into(),
        ))
        .expect("doc");
        assert!(!grants_full_access(&scoped));
        let denied = parse_document(&Value::String(
            r#"{"Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"]}]}"#.into(),
        ))
        .expect("doc");
        assert!(!grants_full_access(&denied));
    }

    #[test]
    fn percent_encoded_documents_are_read() {
        let doc = parse_document(&Value::String(
            "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%7D".into(),
        ))
        .expect("doc");
        assert!(grants_full_access(&doc));
        assert_eq!(parse_document(&Value::String("%7".into())), None);
    }

    #[test]
    fn trust_policies_name_outside_accounts_and_wildcards_but_not_our_own() {
        let doc = parse_document(&Value::String(
            r#"{"Statement":[
                {"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},
                {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::193672423079:root","111111111111"]},"Action":"sts:AssumeRole"},
                {"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}"#
                .into(),
        ))
        .expect("doc");
        let outside = outside_trusted(&doc, |a| a == "111111111111");
        assert_eq!(outside, vec!["193672423079".to_owned(), "*".to_owned()]);
    }
}
