//! The CloudTrail record as AWS writes it, deserialised without copying: strings borrow from
//! the file's bytes where they have no escapes. `requestParameters`, `responseElements` and
//! `additionalEventData`, whose shape depends on the API, are kept as their raw JSON text.
//!
//! Every member is optional here; [`super::normalize`] decides what a usable event needs.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

/// A JSON string borrowed from the input when it has no escapes, owned otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JStr<'a>(pub Cow<'a, str>);

impl JStr<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v)))
            }
            // Account ids and similar fields arrive as numbers in some exports.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Borrowed(if v { "true" } else { "false" })))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Borrowed("")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A flag written as a JSON boolean or as the string `"true"`/`"false"` (both occur).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or \"true\"/\"false\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(Some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                Ok(Flag(match v {
                    "true" | "True" | "TRUE" => Some(true),
                    "false" | "False" | "FALSE" => Some(false),
                    _ => None,
                }))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `userIdentity.sessionContext.sessionIssuer`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSessionIssuer<'a> {
    /// `type`.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<JStr<'a>>,
    /// `arn`.
    #[serde(borrow, default)]
    pub arn: Option<JStr<'a>>,
    /// `accountId`.
    #[serde(borrow, default)]
    pub account_id: Option<JStr<'a>>,
    /// `userName`.
    #[serde(borrow, default)]
    pub user_name: Option<JStr<'a>>,
}

/// `userIdentity.sessionContext.attributes`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawAttributes {
    /// `mfaAuthenticated`.
    #[serde(default)]
    pub mfa_authenticated: Flag,
}

/// `userIdentity.sessionContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSessionContext<'a> {
    /// `sessionIssuer`.
    #[serde(borrow, default)]
    pub session_issuer: Option<RawSessionIssuer<'a>>,
    /// `attributes`.
    #[serde(default)]
    pub attributes: Option<RawAttributes>,
    /// `ec2RoleDelivery`.
    #[serde(borrow, default)]
    pub ec2_role_delivery: Option<JStr<'a>>,
}

/// `userIdentity`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawIdentity<'a> {
    /// `type`.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<JStr<'a>>,
    /// `principalId`.
    #[serde(borrow, default)]
    pub principal_id: Option<JStr<'a>>,
    /// `arn`.
    #[serde(borrow, default)]
    pub arn: Option<JStr<'a>>,
    /// `accountId`.
    #[serde(borrow, default)]
    pub account_id: Option<JStr<'a>>,
    /// `accessKeyId`.
    #[serde(borrow, default)]
    pub access_key_id: Option<JStr<'a>>,
    /// `userName`.
    #[serde(borrow, default)]
    pub user_name: Option<JStr<'a>>,
    /// `invokedBy`.
    #[serde(borrow, default)]
    pub invoked_by: Option<JStr<'a>>,
    /// `sessionContext`.
    #[serde(borrow, default)]
    pub session_context: Option<RawSessionContext<'a>>,
}

/// One entry of `resources`: an object as CloudTrail writes it, or a bare ARN as an
/// EventBridge envelope lists its resources (so the envelope around a CloudTrail event reads).
#[derive(Debug, Default)]
pub struct RawResource<'a> {
    /// `ARN`.
    pub arn: Option<JStr<'a>>,
    /// `accountId`.
    pub account_id: Option<JStr<'a>>,
    /// `type`.
    pub kind: Option<JStr<'a>>,
}

/// [`RawResource`]'s object form.
#[derive(Deserialize)]
struct ResourceFields<'a> {
    #[serde(rename = "ARN", borrow, default)]
    arn: Option<JStr<'a>>,
    #[serde(rename = "accountId", borrow, default)]
    account_id: Option<JStr<'a>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<JStr<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawResource<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawResource<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a resource object or an ARN")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let fields =
                    ResourceFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawResource {
                    arn: fields.arn,
                    account_id: fields.account_id,
                    kind: fields.kind,
                })
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawResource {
                    arn: Some(JStr(Cow::Borrowed(v))),
                    ..RawResource::default()
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawResource {
                    arn: Some(JStr(Cow::Owned(v.to_owned()))),
                    ..RawResource::default()
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// One CloudTrail record, or (when the digest members are set) a digest file's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRecord<'a> {
    /// `eventID`.
    #[serde(rename = "eventID", borrow, default)]
    pub event_id: Option<JStr<'a>>,
    /// `eventTime`.
    #[serde(borrow, default)]
    pub event_time: Option<JStr<'a>>,
    /// `@timestamp`, which some exports carry instead of `eventTime`.
    #[serde(rename = "@timestamp", borrow, default)]
    pub at_timestamp: Option<JStr<'a>>,
    /// `eventSource`.
    #[serde(borrow, default)]
    pub event_source: Option<JStr<'a>>,
    /// `eventName`.
    #[serde(borrow, default)]
    pub event_name: Option<JStr<'a>>,
    /// `eventType`.
    #[serde(borrow, default)]
    pub event_type: Option<JStr<'a>>,
    /// `awsRegion`.
    #[serde(borrow, default)]
    pub aws_region: Option<JStr<'a>>,
    /// `recipientAccountId`.
    #[serde(borrow, default)]
    pub recipient_account_id: Option<JStr<'a>>,
    /// `userIdentity`.
    #[serde(borrow, default)]
    pub user_identity: Option<RawIdentity<'a>>,
    /// `sourceIPAddress`.
    #[serde(rename = "sourceIPAddress", borrow, default)]
    pub source_ip_address: Option<JStr<'a>>,
    /// `userAgent`.
    #[serde(borrow, default)]
    pub user_agent: Option<JStr<'a>>,
    /// `errorCode`.
    #[serde(borrow, default)]
    pub error_code: Option<JStr<'a>>,
    /// `errorMessage`.
    #[serde(borrow, default)]
    pub error_message: Option<JStr<'a>>,
    /// `readOnly`.
    #[serde(default)]
    pub read_only: Flag,
    /// `requestParameters`.
    #[serde(borrow, default)]
    pub request_parameters: Option<&'a RawValue>,
    /// `responseElements`.
    #[serde(borrow, default)]
    pub response_elements: Option<&'a RawValue>,
    /// `additionalEventData`.
    #[serde(borrow, default)]
    pub additional_event_data: Option<&'a RawValue>,
    /// `resources`.
    #[serde(borrow, default)]
    pub resources: Option<Vec<RawResource<'a>>>,
    /// `vpcEndpointId`.
    #[serde(borrow, default)]
    pub vpc_endpoint_id: Option<JStr<'a>>,
    /// `digestSignatureAlgorithm`: set only in digest files.
    #[serde(borrow, default)]
    pub digest_signature_algorithm: Option<JStr<'a>>,
    /// `digestS3Object`: set only in digest files.
    #[serde(rename = "digestS3Object", borrow, default)]
    pub digest_s3_object: Option<JStr<'a>>,
    /// `detail`: the payload of an EventBridge event, which for the `… via CloudTrail` types is
    /// the CloudTrail event. Only this member is kept (not `detail-type`): every member makes
    /// each record bigger to move, and the payload shows by itself whether it is an event.
    #[serde(borrow, default)]
    pub detail: Option<&'a RawValue>,
}

impl RawRecord<'_> {
    /// Whether this object is a digest file's body rather than an event.
    pub fn is_digest(&self) -> bool {
        self.digest_signature_algorithm.is_some() || self.digest_s3_object.is_some()
    }
}
