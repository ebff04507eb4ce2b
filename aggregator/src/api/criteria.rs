//! Builds a validated [`Filter`] from the API's two ways of writing one: GuardDuty's
//! `{"criterion": {...}}` JSON, and short conditions (`severity>=7`, `type=Recon:EC2/Portscan`,
//! `accountId!=111111111111,222222222222`, `updatedAt>=2026-01-01T00:00:00Z`) as typed on a
//! command line or in a URL. Both become one criterion object, parsed by the same
//! [`Filter::parse`] suppression rules use, and every error names the input at fault.

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::findings::model::Timestamp;
use crate::findings::suppression::{Field, Filter};
use crate::findings::types::FindingType;

/// Input name of the JSON criteria (a query parameter, or the JSON body's key).
pub const CRITERIA_FIELD: &str = "criteria";
/// Input name of the short conditions; errors say `filter[i]`.
pub const CONDITIONS_FIELD: &str = "filter";

/// The short operators, longest first so `>=` is not read as `>`.
const OPERATORS: [(&str, &str); 6] = [
    ("!=", "neq"),
    (">=", "gte"),
    ("<=", "lte"),
    ("=", "eq"),
    (">", "gt"),
    ("<", "lt"),
];

/// A filter from optional JSON criteria and short conditions (all must hold); `None` when
/// both are empty.
///
/// # Errors
/// [`ApiError::Invalid`] naming `criteria`, `criteria.<field>` or `filter[i]`.
pub fn build_filter(
    criteria_json: Option<&str>,
    conditions: &[String],
) -> Result<Option<Filter>, ApiError> {
    let mut criterion = Map::new();
    let mut origin: Vec<(String, String)> = Vec::new();
    if let Some(text) = criteria_json.filter(|t| !t.trim().is_empty()) {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::invalid(CRITERIA_FIELD, format!("not valid JSON: {e}")))?;
        // Checked whole first, so its own errors name the criteria.
        Filter::parse(&value).map_err(|e| {
            let field = e.field().map_or(CRITERIA_FIELD.to_owned(), |f| {
                format!("{CRITERIA_FIELD}.{f}")
            });
            ApiError::invalid(field, e.to_string())
        })?;
        if let Some(obj) = value.get("criterion").and_then(Value::as_object) {
            for (k, v) in obj {
                criterion.insert(k.clone(), v.clone());
                origin.push((k.clone(), format!("{CRITERIA_FIELD}.{k}")));
            }
        }
    }
    for (i, text) in conditions.iter().enumerate() {
        let input = format!("{CONDITIONS_FIELD}[{i}]");
        let (field, op, value) = parse_condition(text).map_err(|m| ApiError::invalid(&input, m))?;
        let ops = criterion
            .entry(field.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(ops) = ops.as_object_mut() else {
            return Err(ApiError::invalid(input, format!("{field} is given twice")));
        };
        if ops.contains_key(op) {
            return Err(ApiError::invalid(
                input,
                format!("{field} {op} is given twice"),
            ));
        }
        ops.insert(op.to_owned(), value);
        origin.push((field, input));
    }
    if criterion.is_empty() {
        return Ok(None);
    }
    let whole = serde_json::json!({ "criterion": criterion });
    let filter = Filter::parse(&whole).map_err(|e| {
        let input = e
            .field()
            .and_then(|f| origin.iter().rev().find(|(k, _)| k == f))
            .map_or(CONDITIONS_FIELD.to_owned(), |(_, input)| input.clone());
        ApiError::invalid(input, e.to_string())
    })?;
    check_values(&filter, &origin)?;
    Ok(Some(filter))
}

/// Rejects values that can never match and are surely typos: unknown finding types and
/// account ids that are not 12 digits.
fn check_values(filter: &Filter, origin: &[(String, String)]) -> Result<(), ApiError> {
    let input = |name: &str| {
        origin
            .iter()
            .find(|(k, _)| k == name)
            .map_or(name.to_owned(), |(_, i)| i.clone())
    };
    for t in filter.texts_named(Field::Type) {
        if FindingType::from_name(t).is_err() {
            return Err(ApiError::invalid(
                input("type"),
                format!("unknown finding type {t:?}"),
            ));
        }
    }
    for a in filter.texts_named(Field::AccountId) {
        if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(
                input("accountId"),
                format!("account id must be 12 digits, got {a:?}"),
            ));
        }
    }
    Ok(())
}

/// `FIELD OP VALUE` → (field, GuardDuty operator, JSON value).
fn parse_condition(text: &str) -> Result<(String, &'static str, Value), String> {
    let shape = || {
        format!(
            "{text:?} is not FIELD OP VALUE (OP one of = != > >= < <=; e.g. severity>=7, \
             type=Recon:EC2/Portscan)"
        )
    };
    let at = text.find(['!', '<', '>', '=']).ok_or_else(shape)?;
    let (name, rest) = text.split_at(at);
    let name = name.trim();
    let (sym, op) = OPERATORS
        .iter()
        .find(|(sym, _)| rest.starts_with(sym))
        .ok_or_else(shape)?;
    let raw = rest.get(sym.len()..).unwrap_or("").trim();
    if name.is_empty() || raw.is_empty() {
        return Err(shape());
    }
    let field = Field::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Field::all().map(|(n, _)| n).collect();
        format!("unknown field {name:?} (known: {})", known.join(", "))
    })?;
    let list = matches!(*op, "eq" | "neq");
    let value = if field.is_numeric() {
        let number = |v: &str| -> Result<Value, String> {
            let v = v.trim();
            if let Ok(n) = v.parse::<f64>() {
                return serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{name}: {v:?} is not a finite number"));
            }
            if matches!(field, Field::UpdatedAt | Field::CreatedAt) {
                if let Ok(t) = Timestamp::parse(v) {
                    return Ok(Value::from(t.0));
                }
                return Err(format!(
                    "{name}: {v:?} is neither milliseconds since the epoch nor an RFC 3339 time"
                ));
            }
            Err(format!("{name}: {v:?} is not a number"))
        };
        if list {
            Value::Array(raw.split(',').map(number).collect::<Result<_, _>>()?)
        } else {
            number(raw)?
        }
    } else if list {
        Value::Array(
            raw.split(',')
                .map(|v| Value::String(v.trim().to_owned()))
                .collect(),
        )
    } else {
        return Err(format!("{name}: {sym} needs a numeric field"));
    };
    Ok((name.to_owned(), op, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::samples::sample_finding;

    fn field_of(r: Result<Option<Filter>, ApiError>) -> String {
        match r {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a bad-input error, got {other:?}"),
        }
    }

    #[test]
    fn short_conditions_become_guardduty_criteria() {
        let filter = build_filter(
            None,
            &[
                "severity>=7".into(),
                "severity < 9".into(),
                "type=Backdoor:EC2/C&CActivity.B!DNS,Recon:EC2/Portscan".into(),
                "accountId!=111111111111".into(),
                "updatedAt>=2020-01-01T00:00:00Z".into(),
            ],
        )
        .expect("valid")
        .expect("some");
        assert_eq!(
            filter.source()["criterion"]["severity"],
            serde_json::json!({"gte": 7.0, "lt": 9.0})
        );
        assert_eq!(
            filter.source()["criterion"]["type"]["eq"][0],
            "Backdoor:EC2/C&CActivity.B!DNS"
        );
        assert_eq!(
            filter.source()["criterion"]["updatedAt"]["gte"],
            1_577_836_800_000_i64
        );
        let f = sample_finding(
            FindingType::BackdoorCcActivityDns,
            "123456789012",
            "us-east-1",
        );
        assert!(filter.matches(&f));
        let mut other = f.clone();
        other.account_id = "111111111111".into();
        assert!(!filter.matches(&other));
    }

    #[test]
    fn json_criteria_and_conditions_combine() {
        let filter = build_filter(
            Some(r#"{"criterion": {"type": {"eq": ["Recon:EC2/Portscan"]}}}"#),
            &["severity>=1".into()],
        )
        .expect("valid")
        .expect("some");
        let crit = &filter.source()["criterion"];
        assert!(crit.get("type").is_some() && crit.get("severity").is_some());
        assert!(build_filter(None, &[]).expect("valid").is_none());
    }

    #[test]
    fn bad_conditions_name_the_input_at_fault() {
        assert_eq!(
            field_of(build_filter(
                None,
                &["severity>=7".into(), "sevrity>1".into()]
            )),
            "filter[1]"
        );
        assert_eq!(
            field_of(build_filter(None, &["severity".into()])),
            "filter[0]"
        );
        assert_eq!(
            field_of(build_filter(None, &["severity>=high".into()])),
            "filter[0]"
        );
        assert_eq!(
            field_of(build_filter(None, &["type>3".into()])),
            "filter[0]"
        );
        assert_eq!(
            field_of(build_filter(None, &["type=Recon:EC2/Portscn".into()])),
            "filter[0]"
        );
        assert_eq!(
            field_of(build_filter(None, &["accountId=12".into()])),
            "filter[0]"
        );
        assert_eq!(
            field_of(build_filter(
                None,
                &["severity>=1".into(), "severity>=2".into()]
            )),
            "filter[1]"
        );
        assert_eq!(
            field_of(build_filter(
                Some(r#"{"criterion": {"severity": {"gte": "x"}}}"#),
                &[]
            )),
            "criteria.severity"
        );
        assert_eq!(field_of(build_filter(Some("{nope"), &[])), "criteria");
        assert_eq!(
            field_of(build_filter(
                Some(r#"{"criterion": {"type": {"eq": ["nope"]}}}"#),
                &[]
            )),
            "criteria.type"
        );
    }
}
