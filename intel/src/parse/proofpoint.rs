//! Proofpoint ET intelligence CSV (GuardDuty `PROOF_POINT`): `ip,category,score,first_seen,...`
//! or `domain,category,score,first_seen,...`, header row optional.

use super::csv_records::for_each_record;
use super::{Collector, Meta};
use crate::category::Category;
use crate::indicator::LineProblem;

/// An ET reputation category id's name and the Picket category it implies, if any.
///
/// Ids and names follow Proofpoint's published ET reputation (IQRisk) category table as known
/// when this was written, not checked against a live feed; an id not in the table keeps the
/// list's default category, so a wrong or new id degrades to `custom`, never to a wrong finding
/// type.
pub fn et_category(id: u32) -> Option<(&'static str, Option<Category>)> {
    use Category as C;
    Some(match id {
        1 => ("CnC", Some(C::C2)),
        2 => ("Bot", None),
        3 => ("Spam", None),
        4 => ("Drop", Some(C::DropPoint)),
        5 => ("SpywareCnC", Some(C::C2)),
        6 => ("OnlineGaming", None),
        7 => ("DriveBySrc", Some(C::DriveBy)),
        9 => ("ChatServer", None),
        10 => ("TorNode", Some(C::Tor)),
        13 => ("Compromised", None),
        15 => ("P2P", None),
        16 => ("Proxy", None),
        17 => ("IPCheck", None),
        19 => ("Utility", None),
        20 => ("DDoSTarget", None),
        21 => ("Scanner", Some(C::Scanner)),
        23 => ("Brute_Forcer", Some(C::Scanner)),
        24 => ("FakeAV", None),
        25 => ("DynDNS", None),
        26 => ("Undesirable", None),
        27 => ("AbusedTLD", None),
        28 => ("SelfSignedSSL", None),
        29 => ("Blackhole", Some(C::Blackhole)),
        30 => ("RemoteAccessService", None),
        31 => ("P2PCnC", Some(C::C2)),
        33 => ("Parking", None),
        34 => ("VPN", None),
        35 => ("EXE_Source", Some(C::DriveBy)),
        37 => ("Mobile_CnC", Some(C::C2)),
        38 => ("Mobile_Spyware_CnC", Some(C::C2)),
        39 => ("Skype_SuperNode", None),
        40 => ("Bitcoin_Related", Some(C::Crypto)),
        41 => ("DDoSAttacker", None),
        _ => return None,
    })
}

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    for_each_record(bytes, out, |line, rec, out| {
        let value = rec.get(0).unwrap_or("");
        if value.is_empty()
            || value.eq_ignore_ascii_case("ip")
            || value.eq_ignore_ascii_case("domain")
        {
            return; // blank row or header
        }
        let cat = rec.get(1).unwrap_or("");
        let Ok(cat_id) = cat.parse::<u32>() else {
            let value = super::cut(cat);
            out.reject(
                line,
                LineProblem::BadNumber {
                    field: "category",
                    value,
                    expected: "an ET category id",
                },
            );
            return;
        };
        let score = rec.get(2).unwrap_or("");
        if score.parse::<u8>().map_or(true, |s| s > 127) {
            let value = super::cut(score);
            out.reject(
                line,
                LineProblem::BadNumber {
                    field: "score",
                    value,
                    expected: "an integer 0..=127",
                },
            );
            return;
        }
        let (name, category) = et_category(cat_id).unwrap_or(("unknown", None));
        let description = format!("ET category {cat_id} ({name}), score {score}");
        out.add_any(
            line,
            value,
            Meta {
                category,
                ..Meta::described(&description)
            },
        );
    });
}
