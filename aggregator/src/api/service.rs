//! The findings API's operations, independent of transport: list, get, archive/unarchive and
//! statistics over the [`FindingStore`], each limited to what the [`Caller`] may see.
//! [`super::grpc`] and [`super::http`] are thin edges over this.
//!
//! Listing maps the filter onto the store's indexes ([`Scan`]): `accountId` eq lists and a
//! member's own account pick `by_account`, `type` eq lists `by_type`, severity bounds
//! `by_severity`, `updatedAt` bounds narrow every range; the whole filter is then checked on
//! each finding. Page tokens hold the store position plus a digest of the filter, order and
//! caller's visibility, so a token cannot be replayed against another listing.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::caller::{Caller, Visibility};
use super::error::ApiError;
use crate::findings::model::{Finding, Timestamp};
use crate::findings::store::{FindingStore, MAX_PAGE, MAX_SCAN_FOR_STATISTICS, Scan, ScanOrder};
use crate::findings::suppression::{Field, Filter};
use crate::findings::types::{FindingType, SeverityBand};

/// Page size when the caller gives none (GuardDuty's default).
pub const DEFAULT_MAX_RESULTS: usize = 50;
/// Ids one get/archive/unarchive call may name (GuardDuty's limit).
pub const MAX_IDS: usize = 50;
const TOKEN_VERSION: u8 = 1;

/// A validated listing request.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// All must hold; `None` lists everything visible.
    pub filter: Option<Filter>,
    /// The order.
    pub order: ScanOrder,
    /// Page size, 1..=[`MAX_PAGE`].
    pub max_results: usize,
    /// The previous page's token.
    pub next_token: Option<String>,
}

impl ListRequest {
    /// Checks the raw sort and paging inputs (filter built by [`super::criteria`]).
    ///
    /// # Errors
    /// [`ApiError::Invalid`] naming `sortCriteria.attributeName`, `sortCriteria.orderBy`,
    /// `maxResults` or `nextToken`.
    pub fn new(
        filter: Option<Filter>,
        sort_by: Option<&str>,
        order_by: Option<&str>,
        max_results: Option<u64>,
        next_token: Option<&str>,
    ) -> Result<Self, ApiError> {
        let by_severity = match sort_by.map(str::trim).filter(|s| !s.is_empty()) {
            None | Some("updatedAt") => false,
            Some("severity") => true,
            Some(other) => {
                return Err(ApiError::invalid(
                    "sortCriteria.attributeName",
                    format!("must be updatedAt or severity, got {other:?}"),
                ));
            }
        };
        let desc = match order_by.map(str::trim).filter(|s| !s.is_empty()) {
            None => true,
            Some(o) if o.eq_ignore_ascii_case("DESC") => true,
            Some(o) if o.eq_ignore_ascii_case("ASC") => false,
            Some(other) => {
                return Err(ApiError::invalid(
                    "sortCriteria.orderBy",
                    format!("must be DESC or ASC, got {other:?}"),
                ));
            }
        };
        let order = match (by_severity, desc) {
            (false, true) => ScanOrder::UpdatedDesc,
            (false, false) => ScanOrder::UpdatedAsc,
            (true, true) => ScanOrder::SeverityDesc,
            (true, false) => ScanOrder::SeverityAsc,
        };
        let max_results = match max_results {
            None | Some(0) => DEFAULT_MAX_RESULTS,
            Some(n) if n <= MAX_PAGE as u64 => usize::try_from(n).unwrap_or(MAX_PAGE),
            Some(n) => {
                return Err(ApiError::invalid(
                    "maxResults",
                    format!("must be between 1 and {MAX_PAGE}, got {n}"),
                ));
            }
        };
        Ok(Self {
            filter,
            order,
            max_results,
            next_token: next_token.filter(|t| !t.is_empty()).map(str::to_owned),
        })
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// The findings, in the asked order.
    pub findings: Vec<Finding>,
    /// Where the next page starts; `None` when the listing is exhausted.
    pub next_token: Option<String>,
    /// Ids of stored findings met on the way that do not decode.
    pub corrupt_ids: Vec<String>,
}

/// Counts of the findings a filter selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// By severity band: `LOW`, `MEDIUM`, `HIGH`, `CRITICAL` (each present, maybe 0).
    pub count_by_severity: BTreeMap<String, u64>,
    /// By finding type name.
    pub count_by_type: BTreeMap<String, u64>,
    /// All counted findings.
    pub total: u64,
    /// Whether counting stopped at [`MAX_SCAN_FOR_STATISTICS`] (the counts are a lower bound).
    pub truncated: bool,
}

/// The name statistics use for a band.
pub fn band_name(band: SeverityBand) -> &'static str {
    match band {
        SeverityBand::Low => "LOW",
        SeverityBand::Medium => "MEDIUM",
        SeverityBand::High => "HIGH",
        SeverityBand::Critical => "CRITICAL",
    }
}

/// The findings API over one store.
#[derive(Debug, Clone)]
pub struct FindingsApi {
    store: FindingStore,
}

fn visibility(caller: &Caller) -> Result<Visibility<'_>, ApiError> {
    caller.visibility().ok_or_else(|| {
        ApiError::Forbidden(format!(
            "{caller} may not use the findings API: it needs an administrator or member user \
             certificate"
        ))
    })
}

/// Refuses a member's filter that asks for other accounts by name (`accountId` eq): the answer
/// would silently be empty, which reads like "no findings there".
fn check_accounts_asked(
    caller: &Caller,
    filter: Option<&Filter>,
    vis: Visibility<'_>,
) -> Result<(), ApiError> {
    let Visibility::Account(own) = vis else {
        return Ok(());
    };
    let asked = filter.and_then(|f| f.eq_texts(Field::AccountId));
    match asked.and_then(|l| l.into_iter().find(|a| *a != own)) {
        Some(other) => Err(ApiError::Forbidden(format!(
            "{caller} may see only account {own}'s findings, and the filter asks for {other}"
        ))),
        None => Ok(()),
    }
}

fn visible(vis: Visibility<'_>, f: &Finding) -> bool {
    match vis {
        Visibility::All => true,
        Visibility::Account(a) => f.account_id == a,
    }
}

/// The index bounds a filter and a visibility allow.
fn plan(filter: Option<&Filter>, vis: Visibility<'_>, order: ScanOrder, limit: usize) -> Scan {
    let mut scan = Scan::new(order, limit);
    let eq_accounts = filter.and_then(|f| f.eq_texts(Field::AccountId));
    scan.accounts = match vis {
        Visibility::All => eq_accounts.map(|l| l.into_iter().map(str::to_owned).collect()),
        Visibility::Account(own) => Some(if eq_accounts.is_none_or(|l| l.contains(&own)) {
            vec![own.to_owned()]
        } else {
            Vec::new()
        }),
    };
    if let Some(f) = filter {
        scan.types = f.eq_texts(Field::Type).map(|l| {
            l.into_iter()
                .filter_map(|t| FindingType::from_name(t).ok())
                .collect()
        });
        scan.severity = f.numeric_bounds(Field::Severity);
        let (lo, hi) = f.numeric_bounds(Field::UpdatedAt);
        // Float → integer casts saturate, which is what a bound wants.
        scan.updated = (
            lo.map(|x| Timestamp(x.floor() as i64)),
            hi.map(|x| Timestamp(x.ceil() as i64)),
        );
    }
    scan
}

fn digest(filter: Option<&Filter>, order: ScanOrder, vis: Visibility<'_>) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(filter.map_or(String::new(), |f| f.source().to_string()));
    h.update([0]);
    h.update(format!("{order:?}"));
    h.update([0]);
    h.update(match vis {
        Visibility::All => "*",
        Visibility::Account(a) => a,
    });
    let d = h.finalize();
    let mut out = [0; 8];
    out.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn make_token(order: ScanOrder, digest: [u8; 8], pos: &[u8]) -> String {
    let mut t = vec![TOKEN_VERSION, order as u8];
    t.extend_from_slice(&digest);
    t.extend_from_slice(pos);
    hex(&t)
}

fn read_token(token: &str, order: ScanOrder, digest: [u8; 8]) -> Result<Vec<u8>, ApiError> {
    let bad = |why: &str| ApiError::invalid("nextToken", why.to_owned());
    let bytes = unhex(token).ok_or_else(|| bad("not a token this API issued"))?;
    let Some(([version, ord], rest)) = bytes.split_first_chunk::<2>() else {
        return Err(bad("not a token this API issued"));
    };
    let Some((d, pos)) = rest.split_first_chunk::<8>() else {
        return Err(bad("not a token this API issued"));
    };
    if *version != TOKEN_VERSION {
        return Err(bad("not a token this API issued"));
    }
    if *ord != order as u8 || *d != digest {
        return Err(bad(
            "belongs to a different listing (the filter, sort or caller changed)",
        ));
    }
    Ok(pos.to_vec())
}

/// Checks ids: 1..=[`MAX_IDS`] of 32 lowercase hex digits.
fn check_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(ApiError::invalid(
            "findingIds",
            format!("give 1 to {MAX_IDS} finding ids, got {}", ids.len()),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let ok = id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(ApiError::invalid(
                format!("findingIds[{i}]"),
                format!("a finding id is 32 lowercase hex digits, got {id:?}"),
            ));
        }
    }
    Ok(())
}

impl FindingsApi {
    /// The API over `store`.
    pub fn new(store: FindingStore) -> Self {
        Self { store }
    }

    /// One page of the findings `request` selects that `caller` may see.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] for agents, [`ApiError::Invalid`] for a token of another
    /// listing, [`ApiError::Store`].
    pub fn list(&self, caller: &Caller, request: &ListRequest) -> Result<ListPage, ApiError> {
        let vis = visibility(caller)?;
        let filter = request.filter.as_ref();
        check_accounts_asked(caller, filter, vis)?;
        let d = digest(filter, request.order, vis);
        let mut scan = plan(filter, vis, request.order, request.max_results);
        if let Some(t) = &request.next_token {
            scan.after = Some(read_token(t, request.order, d)?);
        }
        let mut findings = Vec::new();
        let end = self
            .store
            .scan(&scan, |f| {
                let ok = visible(vis, &f) && filter.is_none_or(|flt| flt.matches(&f));
                if ok {
                    findings.push(f);
                }
                ok
            })
            .map_err(|e| match e {
                crate::findings::store::StoreError::BadCursor { .. } => {
                    ApiError::invalid("nextToken", "not a token this API issued")
                }
                other => ApiError::Store(other),
            })?;
        Ok(ListPage {
            findings,
            next_token: end.next.map(|pos| make_token(request.order, d, &pos)),
            corrupt_ids: end.corrupt.into_iter().map(|c| c.id).collect(),
        })
    }

    /// The findings with `ids`, in that order.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a malformed id, [`ApiError::NotFound`] for one that does not
    /// exist or that `caller` may not see, [`ApiError::Forbidden`], [`ApiError::Store`].
    pub fn get(&self, caller: &Caller, ids: &[String]) -> Result<Vec<Finding>, ApiError> {
        let vis = visibility(caller)?;
        check_ids(ids)?;
        ids.iter()
            .map(|id| match self.store.get(id)? {
                Some(f) if visible(vis, &f) => Ok(f),
                _ => Err(ApiError::NotFound { id: id.clone() }),
            })
            .collect()
    }

    /// Sets (`archived`) or clears every named finding's `service.archived`; every id is
    /// checked before anything changes. Returns how many findings changed.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn set_archived(
        &self,
        caller: &Caller,
        ids: &[String],
        archived: bool,
    ) -> Result<usize, ApiError> {
        let findings = self.get(caller, ids)?;
        let mut changed = 0;
        for f in findings.iter().filter(|f| f.service.archived != archived) {
            if self.store.set_archived(&f.id, archived)? {
                changed += 1;
            }
        }
        self.store.flush()?;
        tracing::info!(%caller, findings = ids.len(), changed, archived, "findings archive flag set");
        Ok(changed)
    }

    /// Counts of the findings `filter` selects that `caller` may see.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`], [`ApiError::Store`].
    pub fn statistics(
        &self,
        caller: &Caller,
        filter: Option<&Filter>,
    ) -> Result<Statistics, ApiError> {
        let vis = visibility(caller)?;
        check_accounts_asked(caller, filter, vis)?;
        let mut scan = plan(filter, vis, ScanOrder::UpdatedDesc, usize::MAX);
        scan.max_examined = MAX_SCAN_FOR_STATISTICS;
        let mut stats = Statistics::default();
        for band in [
            SeverityBand::Low,
            SeverityBand::Medium,
            SeverityBand::High,
            SeverityBand::Critical,
        ] {
            stats
                .count_by_severity
                .insert(band_name(band).to_owned(), 0);
        }
        let end = self.store.scan(&scan, |f| {
            let ok = visible(vis, &f) && filter.is_none_or(|flt| flt.matches(&f));
            if ok {
                *stats
                    .count_by_severity
                    .entry(band_name(SeverityBand::of(f.severity)).to_owned())
                    .or_default() += 1;
                *stats
                    .count_by_type
                    .entry(f.finding_type.name().to_owned())
                    .or_default() += 1;
                stats.total += 1;
            }
            ok
        })?;
        stats.truncated = end.next.is_some();
        Ok(stats)
    }
}

/// Runs a store-bound API call off the async workers (sled reads and flushes block).
///
/// # Errors
/// The call's own error, or [`ApiError::Internal`] when the blocking task dies.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use picket_proto::{AgentId, MemberUserId};

    use super::*;
    use crate::api::criteria::build_filter;
    use crate::findings::samples::sample_finding_at;

    const A: &str = "111111111111";
    const B: &str = "222222222222";
    const TYPES: [FindingType; 3] = [
        FindingType::ReconPortscan,
        FindingType::BackdoorCcActivity,
        FindingType::TrojanBlackholeTraffic,
    ];

    fn api() -> (tempfile::TempDir, FindingStore, FindingsApi) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FindingStore::open(dir.path()).expect("open");
        (dir, store.clone(), FindingsApi::new(store))
    }

    /// Finding `n`: account A for even n, B for odd; type cycles; updated at n seconds.
    fn finding(n: u32) -> Finding {
        let t = TYPES[n as usize % TYPES.len()];
        let account = if n % 2 == 0 { A } else { B };
        let mut f = sample_finding_at(t, account, "eu-west-1", Timestamp(i64::from(n) * 1000));
        f.id = format!("{n:032x}");
        f.service.archived = false;
        f
    }

    fn admin() -> Caller {
        Caller::Admin("ops".into())
    }

    fn member(account: &str) -> Caller {
        Caller::Member(MemberUserId::new(account, "bob").expect("id"))
    }

    fn request(
        conditions: &[&str],
        sort: Option<&str>,
        order: Option<&str>,
        max: u64,
    ) -> ListRequest {
        let conditions: Vec<String> = conditions.iter().map(|c| (*c).to_owned()).collect();
        let filter = build_filter(None, &conditions).expect("filter");
        ListRequest::new(filter, sort, order, Some(max), None).expect("request")
    }

    fn all_pages(api: &FindingsApi, caller: &Caller, mut r: ListRequest) -> Vec<Finding> {
        let mut out = Vec::new();
        for _ in 0..100 {
            let page = api.list(caller, &r).expect("list");
            out.extend(page.findings);
            match page.next_token {
                Some(t) => r.next_token = Some(t),
                None => return out,
            }
        }
        panic!("more than 100 pages");
    }

    fn ns(findings: &[Finding]) -> Vec<i64> {
        findings.iter().map(|f| f.updated_at.0 / 1000).collect()
    }

    #[test]
    fn pages_visit_every_finding_once_newest_first_even_when_findings_arrive_between_pages() {
        let (_dir, store, api) = api();
        store
            .upsert_all(&(1..=25).map(finding).collect::<Vec<_>>())
            .expect("upsert");
        let mut r = request(&[], None, None, 10);
        let first = api.list(&admin(), &r).expect("list");
        assert_eq!(ns(&first.findings), (16..=25).rev().collect::<Vec<_>>());
        // Newer findings arrive while the caller pages.
        store
            .upsert_all(&(26..=30).map(finding).collect::<Vec<_>>())
            .expect("upsert");
        r.next_token = first.next_token;
        let rest = all_pages(&api, &admin(), r);
        assert_eq!(ns(&rest), (1..=15).rev().collect::<Vec<_>>());
        // Oldest first sees the new ones at the end.
        let asc = all_pages(&api, &admin(), request(&[], None, Some("ASC"), 7));
        assert_eq!(ns(&asc), (1..=30).collect::<Vec<_>>());
    }

    #[test]
    fn index_bounds_and_the_filter_select_the_same_findings_as_a_plain_scan() {
        let (_dir, store, api) = api();
        let mut all: Vec<Finding> = (1..=40).map(finding).collect();
        for (i, f) in all.iter_mut().enumerate() {
            f.severity = [2.0, 5.5, 8.0, 9.5][i % 4];
        }
        store.upsert_all(&all).expect("upsert");
        let cases: [&[&str]; 6] = [
            &["accountId=111111111111"],
            &["type=Recon:EC2/Portscan,Trojan:EC2/BlackholeTraffic"],
            &["severity>=5", "severity<9"],
            &["updatedAt>=10000", "updatedAt<=20000"],
            &["accountId=222222222222", "severity>7", "updatedAt<30000"],
            &["service.archived=false", "type!=Recon:EC2/Portscan"],
        ];
        for conditions in cases {
            let r = request(conditions, None, None, 3);
            let filter = r.filter.clone().expect("filter");
            let mut want: Vec<&Finding> = all.iter().filter(|f| filter.matches(f)).collect();
            want.sort_by_key(|f| std::cmp::Reverse(f.updated_at));
            assert!(!want.is_empty(), "{conditions:?} selects nothing");
            let got = all_pages(&api, &admin(), r);
            let want_ids: Vec<&str> = want.iter().map(|f| f.id.as_str()).collect();
            let got_ids: Vec<&str> = got.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(got_ids, want_ids, "{conditions:?}");
        }
    }

    #[test]
    fn severity_order_is_highest_first_then_newest() {
        let (_dir, store, api) = api();
        let mut all: Vec<Finding> = (1..=6).map(finding).collect();
        for (f, s) in all.iter_mut().zip([2.0, 8.0, 5.0, 8.0, 2.0, 9.0]) {
            f.severity = s;
        }
        store.upsert_all(&all).expect("upsert");
        let desc = all_pages(&api, &admin(), request(&[], Some("severity"), None, 2));
        assert_eq!(ns(&desc), vec![6, 4, 2, 3, 5, 1]);
        let asc = all_pages(
            &api,
            &admin(),
            request(&["severity>=5"], Some("severity"), Some("asc"), 2),
        );
        assert_eq!(ns(&asc), vec![3, 2, 4, 6]);
    }

    #[test]
    fn a_member_sees_and_changes_only_its_own_account() {
        let (_dir, store, api) = api();
        let all: Vec<Finding> = (1..=10).map(finding).collect();
        store.upsert_all(&all).expect("upsert");
        let mine = all_pages(&api, &member(A), request(&[], None, None, 3));
        assert_eq!(mine.len(), 5);
        assert!(mine.iter().all(|f| f.account_id == A));
        let asked_for_b = api.list(
            &member(A),
            &request(&["accountId=222222222222"], None, None, 3),
        );
        assert!(
            matches!(asked_for_b, Err(ApiError::Forbidden(_))),
            "{asked_for_b:?}"
        );
        let own_named = all_pages(
            &api,
            &member(A),
            request(&["accountId=111111111111"], None, None, 3),
        );
        assert_eq!(own_named.len(), 5);
        let by_severity = all_pages(&api, &member(A), request(&[], Some("severity"), None, 2));
        assert_eq!(by_severity.len(), 5);
        let theirs = all.iter().find(|f| f.account_id == B).expect("a B finding");
        for result in [
            api.get(&member(A), std::slice::from_ref(&theirs.id))
                .map(|_| 0),
            api.set_archived(&member(A), std::slice::from_ref(&theirs.id), true),
        ] {
            assert!(
                matches!(result, Err(ApiError::NotFound { ref id }) if *id == theirs.id),
                "{result:?}"
            );
        }
        assert!(
            !store
                .get(&theirs.id)
                .expect("get")
                .expect("there")
                .service
                .archived
        );
        let own = all
            .iter()
            .find(|f| f.account_id == A)
            .expect("an A finding");
        assert_eq!(
            api.set_archived(&member(A), std::slice::from_ref(&own.id), true)
                .expect("archive"),
            1
        );
        assert_eq!(
            api.set_archived(&member(A), std::slice::from_ref(&own.id), true)
                .expect("archive"),
            0
        );
        assert!(
            store
                .get(&own.id)
                .expect("get")
                .expect("there")
                .service
                .archived
        );
        let stats = api.statistics(&member(A), None).expect("stats");
        assert_eq!(stats.total, 5);
        assert_eq!(api.statistics(&admin(), None).expect("stats").total, 10);
        let agent = Caller::Agent(AgentId::new(A, "i-1").expect("id"));
        assert!(matches!(
            api.list(&agent, &request(&[], None, None, 3)),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            api.statistics(&agent, None),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn statistics_count_by_band_and_type_under_a_filter() {
        let (_dir, store, api) = api();
        let mut all: Vec<Finding> = (1..=6).map(finding).collect();
        for (f, s) in all.iter_mut().zip([2.0, 8.0, 5.0, 8.0, 9.5, 9.0]) {
            f.severity = s;
        }
        store.upsert_all(&all).expect("upsert");
        let filter = build_filter(None, &["severity>=5".into()]).expect("filter");
        let stats = api.statistics(&admin(), filter.as_ref()).expect("stats");
        assert_eq!(stats.total, 5);
        assert_eq!(stats.count_by_severity["LOW"], 0);
        assert_eq!(stats.count_by_severity["MEDIUM"], 1);
        assert_eq!(stats.count_by_severity["HIGH"], 2);
        assert_eq!(stats.count_by_severity["CRITICAL"], 2);
        assert_eq!(stats.count_by_type.values().sum::<u64>(), 5);
        assert!(!stats.truncated);
    }

    #[test]
    fn bad_tokens_ids_and_sorts_are_refused_naming_the_input() {
        let (_dir, store, api) = api();
        store
            .upsert_all(&(1..=5).map(finding).collect::<Vec<_>>())
            .expect("upsert");
        let first = api
            .list(&admin(), &request(&[], None, None, 2))
            .expect("list");
        let token = first.next_token.expect("more pages");
        let field = |e: ApiError| e.field().map(str::to_owned);
        let mut other = request(&["severity>=1"], None, None, 2);
        other.next_token = Some(token.clone());
        assert_eq!(
            field(api.list(&admin(), &other).expect_err("foreign token")),
            Some("nextToken".into())
        );
        let mut as_member = request(&[], None, None, 2);
        as_member.next_token = Some(token);
        assert!(api.list(&member(A), &as_member).is_err());
        let mut garbage = request(&[], None, None, 2);
        garbage.next_token = Some("zz".into());
        assert_eq!(
            field(api.list(&admin(), &garbage).expect_err("garbage")),
            Some("nextToken".into())
        );
        let ids = vec![format!("{:032x}", 1), "../etc".to_owned()];
        assert_eq!(
            field(api.get(&admin(), &ids).expect_err("bad id")),
            Some("findingIds[1]".into())
        );
        assert!(matches!(
            api.get(&admin(), &[]),
            Err(ApiError::Invalid { .. })
        ));
        let unknown = vec![format!("{:032x}", 99)];
        assert!(matches!(
            api.get(&admin(), &unknown),
            Err(ApiError::NotFound { .. })
        ));
        for (sort, order, max, want) in [
            (Some("title"), None, None, "sortCriteria.attributeName"),
            (None, Some("sideways"), None, "sortCriteria.orderBy"),
            (None, None, Some(1001), "maxResults"),
        ] {
            let e = ListRequest::new(None, sort, order, max, None).expect_err("refused");
            assert_eq!(e.field(), Some(want));
        }
    }
}
