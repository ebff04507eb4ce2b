//! Suppression rules: GuardDuty filter criteria that archive matching findings on arrival.
//!
//! A filter is written as GuardDuty writes one:
//! `{"criterion": {"type": {"eq": ["Recon:EC2/Portscan"]}, "severity": {"gte": 7}}}`.
//! Every criterion must hold for the filter to match. Operators are `eq`/`neq` (a list; `eq`
//! matches when the field equals any value, `neq` when it equals none) and `gt`/`gte`/`lt`/`lte`
//! (a number, numeric fields only); GuardDuty's long forms (`equals`, `notEquals`,
//! `greaterThan`, `greaterThanOrEqual`, `lessThan`, `lessThanOrEqual`) are accepted too.
//! Parsing rejects unknown fields, unknown operators and values of the wrong type, naming the
//! field, so a typo never becomes a rule that silently matches nothing.

use serde_json::Value;

use super::model::Finding;

/// Why a filter was rejected; each names the field it is about.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// Occurs when the filter is not `{"criterion": {...}}` with a non-empty object.
    #[error("a filter must be {{\"criterion\": {{<field>: {{<operator>: <value>}}, ...}}}}: {why}")]
    Shape {
        /// What is wrong.
        why: &'static str,
    },
    /// Occurs when a field is not one suppression rules can match on.
    #[error("unknown filter field {field:?} (known: {known})")]
    UnknownField {
        /// The field given.
        field: String,
        /// The fields that exist.
        known: String,
    },
    /// Occurs when a field's condition is not an object of operators.
    #[error("filter field {field}: the condition must be an object like {{\"eq\": [...]}}")]
    ConditionNotObject {
        /// The field.
        field: String,
    },
    /// Occurs when an operator is not one of eq/neq/gt/gte/lt/lte.
    #[error("filter field {field}: unknown operator {operator:?} (use eq, neq, gt, gte, lt, lte)")]
    UnknownOperator {
        /// The field.
        field: String,
        /// The operator given.
        operator: String,
    },
    /// Occurs when a range operator is used on a text field.
    #[error("filter field {field}: operator {operator} needs a numeric field")]
    OperatorNotForField {
        /// The field.
        field: String,
        /// The operator.
        operator: String,
    },
    /// Occurs when a value has the wrong JSON type for the field and operator.
    #[error("filter field {field}: {operator} expects {expected}, got {got}")]
    WrongValueType {
        /// The field.
        field: String,
        /// The operator.
        operator: String,
        /// What was expected.
        expected: &'static str,
        /// The value given, as JSON.
        got: String,
    },
}

impl FilterError {
    /// The criterion field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Shape { .. } => None,
            Self::UnknownField { field, .. }
            | Self::ConditionNotObject { field }
            | Self::UnknownOperator { field, .. }
            | Self::OperatorNotForField { field, .. }
            | Self::WrongValueType { field, .. } => Some(field),
        }
    }
}

/// The finding fields a filter can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `type`.
    Type,
    /// `severity`.
    Severity,
    /// `accountId`.
    AccountId,
    /// `region`.
    Region,
    /// `id`.
    Id,
    /// `resource.resourceType`.
    ResourceType,
    /// `resource.instanceDetails.instanceId`.
    InstanceId,
    /// `service.action.actionType`.
    ActionType,
    /// `service.resourceRole`.
    ResourceRole,
    /// `service.action.networkConnectionAction.remoteIpDetails.ipAddressV4`.
    RemoteIpV4,
    /// `service.action.networkConnectionAction.remotePortDetails.port`.
    RemotePort,
    /// `service.action.networkConnectionAction.localPortDetails.port`.
    LocalPort,
    /// `service.action.networkConnectionAction.protocol`.
    Protocol,
    /// `service.action.dnsRequestAction.domain`.
    DnsDomain,
    /// `service.count`.
    Count,
    /// `updatedAt`, as milliseconds since the epoch (GuardDuty's criterion form).
    UpdatedAt,
    /// `createdAt`, as milliseconds since the epoch.
    CreatedAt,
    /// `service.archived`, `"true"` or `"false"` as GuardDuty writes it.
    Archived,
}

const FIELDS: [(&str, Field); 18] = [
    ("type", Field::Type),
    ("severity", Field::Severity),
    ("accountId", Field::AccountId),
    ("region", Field::Region),
    ("id", Field::Id),
    ("resource.resourceType", Field::ResourceType),
    ("resource.instanceDetails.instanceId", Field::InstanceId),
    ("service.action.actionType", Field::ActionType),
    ("service.resourceRole", Field::ResourceRole),
    (
        "service.action.networkConnectionAction.remoteIpDetails.ipAddressV4",
        Field::RemoteIpV4,
    ),
    (
        "service.action.networkConnectionAction.remotePortDetails.port",
        Field::RemotePort,
    ),
    (
        "service.action.networkConnectionAction.localPortDetails.port",
        Field::LocalPort,
    ),
    (
        "service.action.networkConnectionAction.protocol",
        Field::Protocol,
    ),
    ("service.action.dnsRequestAction.domain", Field::DnsDomain),
    ("service.count", Field::Count),
    ("updatedAt", Field::UpdatedAt),
    ("createdAt", Field::CreatedAt),
    ("service.archived", Field::Archived),
];

impl Field {
    /// Looks a field up by its GuardDuty criterion name.
    pub fn parse(name: &str) -> Option<Self> {
        FIELDS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }

    /// The criterion name.
    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    /// Every field a filter can test, by criterion name.
    pub fn all() -> impl Iterator<Item = (&'static str, Self)> {
        FIELDS.into_iter()
    }

    /// Whether the field takes numbers (and so the range operators).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Severity
                | Self::RemotePort
                | Self::LocalPort
                | Self::Count
                | Self::UpdatedAt
                | Self::CreatedAt
        )
    }

    fn value(self, f: &Finding) -> Option<Scalar<'_>> {
        let net = f.service.action.network_connection_action.as_ref();
        Some(match self {
            Self::Type => Scalar::Text(f.finding_type.name()),
            Self::Severity => Scalar::Number(f.severity),
            Self::AccountId => Scalar::Text(&f.account_id),
            Self::Region => Scalar::Text(&f.region),
            Self::Id => Scalar::Text(&f.id),
            Self::ResourceType => Scalar::Text(f.resource.resource_type.as_str()),
            Self::InstanceId => Scalar::Text(f.instance_id()?),
            Self::ActionType => Scalar::Text(f.service.action.action_type.as_str()),
            Self::ResourceRole => Scalar::Text(match f.service.resource_role {
                crate::detectors::ResourceRole::Actor => "ACTOR",
                crate::detectors::ResourceRole::Target => "TARGET",
            }),
            Self::RemoteIpV4 => Scalar::Text(f.remote_ipv4()?),
            Self::RemotePort => Scalar::Number(f64::from(net?.remote_port_details.port)),
            Self::LocalPort => Scalar::Number(f64::from(net?.local_port_details.port)),
            Self::Protocol => Scalar::Text(&net?.protocol),
            Self::DnsDomain => Scalar::Text(f.dns_domain()?),
            // Counts beyond 2^53 lose precision as f64; no rule needs that range.
            Self::Count => Scalar::Number(f.service.count as f64),
            // Milliseconds stay exact in f64 until the year 287396.
            Self::UpdatedAt => Scalar::Number(f.updated_at.0 as f64),
            Self::CreatedAt => Scalar::Number(f.created_at.0 as f64),
            Self::Archived => Scalar::Text(if f.service.archived { "true" } else { "false" }),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar<'a> {
    Text(&'a str),
    Number(f64),
}

/// A value in an `eq`/`neq` list.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(f64),
}

impl Literal {
    fn equals(&self, v: Scalar<'_>) -> bool {
        match (self, v) {
            (Self::Text(a), Scalar::Text(b)) => a == b,
            (Self::Number(a), Scalar::Number(b)) => a == &b,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Eq(Vec<Literal>),
    Neq(Vec<Literal>),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

impl Condition {
    fn holds(&self, v: Option<Scalar<'_>>) -> bool {
        let num = |v: Option<Scalar<'_>>| match v {
            Some(Scalar::Number(n)) => Some(n),
            _ => None,
        };
        match self {
            Self::Eq(list) => v.is_some_and(|v| list.iter().any(|l| l.equals(v))),
            // A finding without the field is "not equal" to every value.
            Self::Neq(list) => v.is_none_or(|v| !list.iter().any(|l| l.equals(v))),
            Self::Gt(x) => num(v).is_some_and(|n| n > *x),
            Self::Gte(x) => num(v).is_some_and(|n| n >= *x),
            Self::Lt(x) => num(v).is_some_and(|n| n < *x),
            Self::Lte(x) => num(v).is_some_and(|n| n <= *x),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Criterion {
    field: Field,
    condition: Condition,
}

/// A parsed, validated filter; keeps the JSON it came from so it can be stored and shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    criteria: Vec<Criterion>,
    source: Value,
}

impl Filter {
    /// Parses a filter from its JSON text.
    ///
    /// # Errors
    /// [`FilterError`] naming the field and what is wrong; malformed JSON is a `Shape` error.
    pub fn parse_str(text: &str) -> Result<Self, FilterError> {
        let value: Value = serde_json::from_str(text).map_err(|_| FilterError::Shape {
            why: "not valid JSON",
        })?;
        Self::parse(&value)
    }

    /// Parses a filter from a JSON value (`{"criterion": {...}}`).
    ///
    /// # Errors
    /// [`FilterError`] naming the field and what is wrong.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let Some(obj) = value.as_object() else {
            return Err(FilterError::Shape {
                why: "not an object",
            });
        };
        if let Some(other) = obj.keys().find(|k| *k != "criterion") {
            return Err(FilterError::UnknownField {
                field: other.clone(),
                known: "criterion".to_owned(),
            });
        }
        let Some(criterion) = obj.get("criterion").and_then(Value::as_object) else {
            return Err(FilterError::Shape {
                why: "\"criterion\" is missing or not an object",
            });
        };
        if criterion.is_empty() {
            return Err(FilterError::Shape {
                why: "\"criterion\" is empty, which would match every finding",
            });
        }
        let mut criteria = Vec::new();
        for (name, cond) in criterion {
            let field = Field::parse(name).ok_or_else(|| FilterError::UnknownField {
                field: name.clone(),
                known: FIELDS.map(|(n, _)| n).join(", "),
            })?;
            let Some(ops) = cond.as_object().filter(|o| !o.is_empty()) else {
                return Err(FilterError::ConditionNotObject {
                    field: name.clone(),
                });
            };
            for (op, arg) in ops {
                criteria.push(Criterion {
                    field,
                    condition: parse_condition(field, op, arg)?,
                });
            }
        }
        Ok(Self {
            criteria,
            source: value.clone(),
        })
    }

    /// Whether every criterion holds for `finding`.
    pub fn matches(&self, finding: &Finding) -> bool {
        self.criteria
            .iter()
            .all(|c| c.condition.holds(c.field.value(finding)))
    }

    /// The JSON the filter was parsed from.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The text values `field` must equal one of, when an `eq` criterion names it (the first
    /// such criterion: each is a necessary condition). Lets a query pick an index.
    pub fn eq_texts(&self, field: Field) -> Option<Vec<&str>> {
        self.criteria.iter().find_map(|c| match &c.condition {
            Condition::Eq(list) if c.field == field => Some(
                list.iter()
                    .filter_map(|l| match l {
                        Literal::Text(t) => Some(t.as_str()),
                        Literal::Number(_) => None,
                    })
                    .collect(),
            ),
            _ => None,
        })
    }

    /// Every text value any `eq` or `neq` criterion on `field` names (for checking them).
    pub fn texts_named(&self, field: Field) -> Vec<&str> {
        self.criteria
            .iter()
            .filter(|c| c.field == field)
            .flat_map(|c| match &c.condition {
                Condition::Eq(list) | Condition::Neq(list) => list.as_slice(),
                _ => &[],
            })
            .filter_map(|l| match l {
                Literal::Text(t) => Some(t.as_str()),
                Literal::Number(_) => None,
            })
            .collect()
    }

    /// Inclusive bounds that every value of numeric `field` a match can have lies within,
    /// from its `gt`/`gte`/`lt`/`lte`/`eq` criteria (loose: `gt 7` gives a lower bound of 7).
    /// Lets a query narrow an index range; [`Self::matches`] still decides.
    pub fn numeric_bounds(&self, field: Field) -> (Option<f64>, Option<f64>) {
        let (mut low, mut high): (Option<f64>, Option<f64>) = (None, None);
        let raise = |b: &mut Option<f64>, v: f64| *b = Some(b.map_or(v, |x| x.max(v)));
        let lower = |b: &mut Option<f64>, v: f64| *b = Some(b.map_or(v, |x| x.min(v)));
        for c in self.criteria.iter().filter(|c| c.field == field) {
            match &c.condition {
                Condition::Gt(x) | Condition::Gte(x) => raise(&mut low, *x),
                Condition::Lt(x) | Condition::Lte(x) => lower(&mut high, *x),
                Condition::Eq(list) => {
                    let nums = list.iter().filter_map(|l| match l {
                        Literal::Number(n) => Some(*n),
                        Literal::Text(_) => None,
                    });
                    let (min, max) = nums.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), n| {
                        (a.min(n), b.max(n))
                    });
                    if min <= max {
                        raise(&mut low, min);
                        lower(&mut high, max);
                    }
                }
                Condition::Neq(_) => {}
            }
        }
        (low, high)
    }
}

fn parse_condition(field: Field, op: &str, arg: &Value) -> Result<Condition, FilterError> {
    let wrong = |expected: &'static str| FilterError::WrongValueType {
        field: field.name().to_owned(),
        operator: op.to_owned(),
        expected,
        got: arg.to_string(),
    };
    let list = |arg: &Value| -> Result<Vec<Literal>, FilterError> {
        let expected = if field.is_numeric() {
            "a non-empty list of numbers"
        } else {
            "a non-empty list of strings"
        };
        let items = arg
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| wrong(expected))?;
        items
            .iter()
            .map(|v| match (field.is_numeric(), v) {
                (true, Value::Number(n)) => n
                    .as_f64()
                    .map(Literal::Number)
                    .ok_or_else(|| wrong(expected)),
                // GuardDuty's API takes eq values as strings even for numeric fields.
                (true, Value::String(s)) => {
                    s.parse().map(Literal::Number).map_err(|_| wrong(expected))
                }
                (false, Value::String(s)) => Ok(Literal::Text(s.clone())),
                _ => Err(wrong(expected)),
            })
            .collect()
    };
    let number = |arg: &Value| -> Result<f64, FilterError> {
        if !field.is_numeric() {
            return Err(FilterError::OperatorNotForField {
                field: field.name().to_owned(),
                operator: op.to_owned(),
            });
        }
        arg.as_f64().ok_or_else(|| wrong("a number"))
    };
    Ok(match op {
        "eq" | "equals" => Condition::Eq(list(arg)?),
        "neq" | "notEquals" => Condition::Neq(list(arg)?),
        "gt" | "greaterThan" => Condition::Gt(number(arg)?),
        "gte" | "greaterThanOrEqual" => Condition::Gte(number(arg)?),
        "lt" | "lessThan" => Condition::Lt(number(arg)?),
        "lte" | "lessThanOrEqual" => Condition::Lte(number(arg)?),
        _ => {
            return Err(FilterError::UnknownOperator {
                field: field.name().to_owned(),
                operator: op.to_owned(),
            });
        }
    })
}

/// A named filter that archives what it matches.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionRule {
    /// The rule's name.
    pub name: String,
    /// What it matches.
    pub filter: Filter,
}

/// The rules in force, checked in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuppressionRules {
    rules: Vec<SuppressionRule>,
}

impl SuppressionRules {
    /// Rules checked in the order given.
    pub fn new(rules: Vec<SuppressionRule>) -> Self {
        Self { rules }
    }

    /// The name of the first rule that matches `finding`, if any.
    pub fn first_match(&self, finding: &Finding) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.filter.matches(finding))
            .map(|r| r.name.as_str())
    }

    /// The rules.
    pub fn rules(&self) -> &[SuppressionRule] {
        &self.rules
    }
}

/// The ids of the findings in `findings` that `filter` would archive: a rule's dry run.
pub fn dry_run<'a>(
    filter: &Filter,
    findings: impl IntoIterator<Item = &'a Finding>,
) -> Vec<String> {
    findings
        .into_iter()
        .filter(|f| !f.service.archived && filter.matches(f))
        .map(|f| f.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::findings::samples::sample_finding;
    use crate::findings::types::FindingType;

    fn finding(t: FindingType) -> Finding {
        let mut f = sample_finding(t, "123456789012", "eu-west-1");
        f.service.archived = false;
        f
    }

    fn filter(v: Value) -> Filter {
        match Filter::parse(&v) {
            Ok(f) => f,
            Err(e) => panic!("filter {v} rejected: {e}"),
        }
    }

    #[test]
    fn a_type_and_severity_filter_matches_only_findings_meeting_both() {
        let f = filter(json!({"criterion": {
            "type": {"eq": ["Recon:EC2/Portscan"]},
            "severity": {"gte": 5}
        }}));
        assert!(f.matches(&finding(FindingType::ReconPortscan)));
        assert!(!f.matches(&finding(FindingType::BackdoorCcActivity)));
        let mut low = finding(FindingType::ReconPortscan);
        low.severity = 2.0;
        assert!(!f.matches(&low));
    }

    #[test]
    fn neq_excludes_listed_accounts_and_instance_and_address_fields_work() {
        let f = filter(json!({"criterion": {
            "accountId": {"neq": ["111111111111"]},
            "resource.instanceDetails.instanceId": {"eq": ["i-99999999"]},
            "service.action.networkConnectionAction.remoteIpDetails.ipAddressV4": {"eq": ["198.51.100.1"]}
        }}));
        let mut fd = finding(FindingType::BackdoorCcActivity);
        assert!(f.matches(&fd), "sample: {:?}", fd.resource);
        fd.account_id = "111111111111".into();
        assert!(!f.matches(&fd));
    }

    #[test]
    fn a_dns_domain_filter_does_not_match_findings_without_a_dns_action() {
        let f = filter(json!({"criterion": {
            "service.action.dnsRequestAction.domain": {"eq": ["guarddutyc2activityb.com"]}
        }}));
        assert!(f.matches(&finding(FindingType::BackdoorCcActivityDns)));
        assert!(!f.matches(&finding(FindingType::BackdoorCcActivity)));
    }

    #[test]
    fn an_unknown_field_is_rejected_by_name() {
        let err = Filter::parse(&json!({"criterion": {"severty": {"gte": 7}}}));
        assert!(
            matches!(&err, Err(FilterError::UnknownField { field, .. }) if field == "severty"),
            "{err:?}"
        );
    }

    #[test]
    fn an_unknown_operator_is_rejected_naming_the_field() {
        let err = Filter::parse(&json!({"criterion": {"type": {"like": ["Recon"]}}}));
        let Err(e) = err else { panic!("accepted") };
        assert!(
            matches!(&e, FilterError::UnknownOperator { field, operator } if field == "type" && operator == "like")
        );
        assert!(e.to_string().contains("type"));
    }

    #[test]
    fn a_wrong_value_type_is_rejected_naming_the_field() {
        let cases = [
            json!({"criterion": {"severity": {"gte": "high"}}}),
            json!({"criterion": {"type": {"eq": "Recon:EC2/Portscan"}}}),
            json!({"criterion": {"accountId": {"eq": [123]}}}),
            json!({"criterion": {"type": {"gt": 3}}}),
            json!({"criterion": {"type": {"eq": []}}}),
        ];
        for c in cases {
            let err = Filter::parse(&c);
            let Err(e) = err else { panic!("{c} accepted") };
            let msg = e.to_string();
            assert!(
                msg.contains("severity") || msg.contains("type") || msg.contains("accountId"),
                "{msg}"
            );
        }
    }

    #[test]
    fn an_empty_or_misshapen_filter_is_rejected() {
        assert!(Filter::parse(&json!({"criterion": {}})).is_err());
        assert!(Filter::parse(&json!({"criteria": {"type": {"eq": ["x"]}}})).is_err());
        assert!(Filter::parse(&json!([1, 2])).is_err());
        assert!(Filter::parse_str("{not json").is_err());
    }

    #[test]
    fn eq_on_a_numeric_field_accepts_numeric_strings_as_guardduty_does() {
        let f = filter(json!({"criterion": {"severity": {"eq": ["8"]}}}));
        assert!(f.matches(&finding(FindingType::BackdoorCcActivity)));
        assert!(!f.matches(&finding(FindingType::ReconPortscan)));
    }

    #[test]
    fn index_hints_come_from_eq_lists_and_numeric_ranges() {
        let f = filter(json!({"criterion": {
            "accountId": {"eq": ["111111111111", "222222222222"]},
            "severity": {"gt": 4, "lte": 8},
            "updatedAt": {"gte": 1000},
            "service.archived": {"eq": ["false"]}
        }}));
        assert_eq!(
            f.eq_texts(Field::AccountId),
            Some(vec!["111111111111", "222222222222"])
        );
        assert_eq!(f.eq_texts(Field::Type), None);
        assert_eq!(f.numeric_bounds(Field::Severity), (Some(4.0), Some(8.0)));
        assert_eq!(f.numeric_bounds(Field::UpdatedAt), (Some(1000.0), None));
        assert_eq!(f.numeric_bounds(Field::Count), (None, None));
        let mut fd = finding(FindingType::BackdoorCcActivity);
        fd.account_id = "222222222222".into();
        fd.updated_at = crate::findings::model::Timestamp(5000);
        assert!(f.matches(&fd));
        fd.service.archived = true;
        assert!(!f.matches(&fd));
        fd.service.archived = false;
        fd.updated_at = crate::findings::model::Timestamp(999);
        assert!(!f.matches(&fd));
    }

    #[test]
    fn rules_report_the_first_matching_rule_by_name() {
        let rules = SuppressionRules::new(vec![
            SuppressionRule {
                name: "no-portscans".into(),
                filter: filter(json!({"criterion": {"type": {"eq": ["Recon:EC2/Portscan"]}}})),
            },
            SuppressionRule {
                name: "high".into(),
                filter: filter(json!({"criterion": {"severity": {"gte": 7}}})),
            },
        ]);
        assert_eq!(
            rules.first_match(&finding(FindingType::ReconPortscan)),
            Some("no-portscans")
        );
        assert_eq!(
            rules.first_match(&finding(FindingType::BackdoorCcActivity)),
            Some("high")
        );
        assert_eq!(
            rules.first_match(&finding(FindingType::TrojanBlackholeTraffic)),
            None
        );
    }

    #[test]
    fn a_dry_run_lists_only_unarchived_matching_findings() {
        let f = filter(json!({"criterion": {"severity": {"gte": 7}}}));
        let high = finding(FindingType::BackdoorCcActivity);
        let mut archived_high = finding(FindingType::BackdoorCcActivityDns);
        archived_high.service.archived = true;
        let medium = finding(FindingType::ReconPortscan);
        let ids = dry_run(&f, [&high, &archived_high, &medium]);
        assert_eq!(ids, vec![high.id.clone()]);
    }
}
