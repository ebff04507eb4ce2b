//! The binary encoding: round trips, and hostile bytes that must give errors, never panics.

use picket_intel::{
    Category, DecodeError, ListFormat, ListKind, ListOptions, Snapshot, SnapshotBuilder,
    canary_list, parse_list,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// Header bytes before the version field (magic + format) and the version field's length.
const VERSION_AT: usize = 10;
const VERSION_LEN: usize = 8;

fn sample() -> Snapshot {
    let threat = parse_list(
        "threat.txt",
        b"45.95.19.50\n45.95.20.0/24\n2a06:e480::1\n2a06:e480::/29\nevil.example\nxn--bcher-kva.example\n",
        &ListOptions::new("threat", ListKind::Threat).category(Category::C2).format(ListFormat::Plain),
    )
    .expect("parse");
    let trusted = parse_list(
        "trusted.txt",
        b"8.8.8.8\ncorp.example\n",
        &ListOptions::new("trusted", ListKind::Trusted),
    )
    .expect("parse");
    let mut b = SnapshotBuilder::new();
    b.add_list(threat).add_list(trusted).add_list(canary_list());
    b.build(42).expect("build")
}

/// Wraps `body` in a valid header with a correct hash, as a forger who knows the format would.
fn wrap(body: &[u8]) -> Vec<u8> {
    let mut out = b"PKTINTEL".to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&9u64.to_le_bytes());
    let hash: [u8; 32] = Sha256::digest(body).into();
    out.extend_from_slice(&hash);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn u32le(n: u32) -> [u8; 4] {
    n.to_le_bytes()
}

/// A body with one string, one threat list, one metadata row, then the given IPv4 rows and
/// domain rows (already encoded), and no IPv6 rows.
fn body(v4_rows: &[(u32, u8, u32)], domains: &[(&str, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&u32le(1));
    b.extend_from_slice(&u32le(3));
    b.extend_from_slice(b"src");
    b.extend_from_slice(&u32le(1));
    b.extend_from_slice(&u32le(4));
    b.extend_from_slice(b"list");
    b.push(0);
    b.extend_from_slice(&[0u8; 24]);
    b.extend_from_slice(&u32le(1));
    b.extend_from_slice(&u32le(0));
    b.push(0);
    b.extend_from_slice(&u32le(0));
    b.extend_from_slice(&u32le(0));
    b.extend_from_slice(&u32le(v4_rows.len() as u32));
    for (a, p, m) in v4_rows {
        b.extend_from_slice(&a.to_le_bytes());
        b.push(*p);
        b.extend_from_slice(&m.to_le_bytes());
    }
    b.extend_from_slice(&u32le(0));
    b.extend_from_slice(&u32le(domains.len() as u32));
    for (name, meta) in domains {
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&meta.to_le_bytes());
    }
    b
}

#[test]
fn a_snapshot_round_trips_through_its_encoding() {
    let snap = sample();
    let bytes = snap.to_bytes();
    let back = Snapshot::from_bytes(&bytes).expect("decode");
    assert_eq!(back.version(), 42);
    assert_eq!(back.content_hash(), snap.content_hash());
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.stats(), snap.stats());
    for q in [
        "45.95.19.50",
        "45.95.20.7",
        "2a06:e480::1",
        "2a06:e481::",
        "8.8.8.8",
        "1.1.1.1",
    ] {
        let ip = q.parse().expect("ip");
        assert_eq!(back.lookup_ip(ip), snap.lookup_ip(ip), "{q}");
    }
    for q in [
        "a.evil.example",
        "bücher.example",
        "corp.example",
        "guarddutyc2activityb.com",
        "x.org",
    ] {
        assert_eq!(back.lookup_domain(q), snap.lookup_domain(q), "{q}");
    }
    assert!(back.match_ip("45.95.19.50".parse().expect("ip")).is_some());
}

#[test]
fn a_hand_made_body_decodes_so_the_hostile_cases_below_test_one_fault_each() {
    let snap = Snapshot::from_bytes(&wrap(&body(
        &[(0x2d5f_1332, 32, 0)],
        &[("evil.example", 0)],
    )))
    .expect("valid body");
    assert_eq!(snap.indicator_count(), 2);
    assert!(snap.match_ip("45.95.19.50".parse().expect("ip")).is_some());
    assert!(snap.match_domain("evil.example").is_some());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample().to_bytes();
    for len in 0..bytes.len() {
        assert!(
            Snapshot::from_bytes(&bytes[..len]).is_err(),
            "truncated to {len}"
        );
    }
}

#[test]
fn every_changed_byte_outside_the_version_is_detected() {
    let bytes = sample().to_bytes();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        let r = Snapshot::from_bytes(&b);
        if (VERSION_AT..VERSION_AT + VERSION_LEN).contains(&i) {
            // The version is not content: the hash covers the body only.
            assert!(r.is_ok_and(|s| s.version() != 42), "byte {i}");
        } else {
            assert!(r.is_err(), "flipping byte {i} went unnoticed");
        }
    }
}

#[test]
fn header_faults_are_named() {
    let good = sample().to_bytes();
    assert_eq!(
        Snapshot::from_bytes(b"PKT").err(),
        Some(DecodeError::TooShort { have: 3, need: 58 })
    );
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(
        Snapshot::from_bytes(&bad).err(),
        Some(DecodeError::BadMagic)
    );
    let mut bad = good.clone();
    bad[8] = 2;
    assert_eq!(
        Snapshot::from_bytes(&bad).err(),
        Some(DecodeError::UnsupportedFormat { found: 2 })
    );
    let mut bad = good.clone();
    bad.push(0);
    assert!(matches!(
        Snapshot::from_bytes(&bad),
        Err(DecodeError::BodyLength { .. })
    ));
    let mut bad = good;
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(
        Snapshot::from_bytes(&bad).err(),
        Some(DecodeError::HashMismatch)
    );
}

#[test]
fn forged_bodies_with_correct_hashes_are_still_validated() {
    let invalid = |bytes: Vec<u8>, why: &str| match Snapshot::from_bytes(&bytes) {
        Err(DecodeError::Invalid { why: w, .. }) => assert_eq!(w, why),
        other => panic!("expected Invalid({why}), got {other:?}"),
    };
    invalid(
        wrap(&body(&[(0x2d5f_1332, 33, 0)], &[])),
        "prefix longer than the address",
    );
    invalid(wrap(&body(&[(0x2d5f_1332, 24, 0)], &[])), "host bits set");
    invalid(
        wrap(&body(&[(0x2d5f_1332, 32, 5)], &[])),
        "metadata index out of range",
    );
    invalid(
        wrap(&body(&[(0x2d5f_1333, 32, 0), (0x2d5f_1332, 32, 0)], &[])),
        "not strictly sorted",
    );
    invalid(
        wrap(&body(&[], &[("EVIL.example", 0)])),
        "not a normalised domain name",
    );
    invalid(
        wrap(&body(&[], &[("b.example", 0), ("a.example", 0)])),
        "not strictly sorted",
    );
    invalid(
        wrap(&body(&[], &[("localhost", 0)])),
        "not a normalised domain name",
    );

    let mut trailing = body(&[], &[]);
    trailing.push(7);
    assert_eq!(
        Snapshot::from_bytes(&wrap(&trailing)).err(),
        Some(DecodeError::TrailingBytes { count: 1 })
    );
    assert!(matches!(
        Snapshot::from_bytes(&wrap(&u32le(u32::MAX))),
        Err(DecodeError::CountTooLarge {
            section: "strings",
            ..
        })
    ));
    let mut unknown_kind = body(&[], &[]);
    unknown_kind[23] = 9; // the list's kind byte: after 11 bytes of strings, a count, a length and `list`
    invalid(wrap(&unknown_kind), "unknown list kind");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Snapshot::from_bytes(&bytes);
        let _ = Snapshot::from_bytes(&wrap(&bytes));
    }

    #[test]
    fn random_corruption_of_a_real_body_is_caught_or_still_valid(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let snap = sample();
        let good = snap.to_bytes();
        let mut body = good[58..].to_vec();
        for (at, value) in edits {
            let i = at.index(body.len());
            body[i] = value;
        }
        // Re-hashed, so only the structural checks stand between the forgery and the matcher.
        if let Ok(forged) = Snapshot::from_bytes(&wrap(&body)) {
            prop_assert_eq!(Snapshot::from_bytes(&forged.to_bytes()).map(|s| s.content_hash()), Ok(forged.content_hash()));
        }
    }
}
