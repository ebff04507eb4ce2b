//! Domain-name normalisation and the label-suffix hash the matcher's domain table is keyed by.
//!
//! Names are stored lower-case, without a trailing dot, in IDNA ASCII (punycode) form, so
//! `Bücher.example.`, `bücher.example` and `xn--bcher-kva.example` are one name. The hash walks the
//! name right to left so one pass yields the hash of every label suffix (`example`,
//! `bücher.example`, ...) without allocating.

use std::borrow::Cow;

/// Longest name DNS can carry in text form (RFC 1035 §2.3.4, 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;
/// Longest single label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a text is not a usable domain name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// Occurs when the name is empty after trimming.
    #[error("empty name")]
    Empty,
    /// Occurs when the name has a single label (`localhost`, `com`): it would match too much.
    #[error("single-label name")]
    SingleLabel,
    /// Occurs when the name is longer than 253 characters.
    #[error("name longer than {MAX_NAME_LEN} characters")]
    TooLong,
    /// Occurs when a label is empty or longer than 63 characters.
    #[error("empty label or label longer than {MAX_LABEL_LEN} characters")]
    BadLabel,
    /// Occurs when the name holds a character DNS names cannot hold.
    #[error("character {0:?} is not allowed in a domain name")]
    BadChar(char),
    /// Occurs when IDNA processing rejects the name (bad punycode, disallowed code points).
    #[error("IDNA conversion failed")]
    Idna,
    /// Occurs when the text is an IP address, which is not a name.
    #[error("an IP address is not a domain name")]
    IsAddress,
    /// Occurs when the last label is all digits (`999.1.1.1`): no top-level domain is
    /// (RFC 3696 section 2), so such a line is a mistyped address, not a name.
    #[error("the last label is all digits, which no top-level domain is")]
    NumericTld,
}

fn plain_ascii_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Normalises a domain name: trims, drops one trailing dot and a leading `*.`, lower-cases and
/// converts to IDNA ASCII; then checks length, labels and characters.
///
/// # Errors
/// Returns a [`DomainError`] naming the first problem found.
pub fn normalize(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    let s = s.strip_prefix("*.").unwrap_or(s);
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(DomainError::Empty);
    }
    // Most feed lines are plain ASCII; skipping IDNA for them keeps loading fast.
    let has_ace = s
        .split('.')
        .any(|l| l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")));
    let name: Cow<'_, str> = if s.bytes().all(plain_ascii_byte) && !has_ace {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(DomainError::BadChar(c));
        }
        Cow::Owned(idna::domain_to_ascii(s).map_err(|_| DomainError::Idna)?)
    };
    check_normalized(&name)?;
    // Here rather than in `check_normalized`, which also vets decoded snapshots: one built
    // before this rule may hold such a name and must still load.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DomainError::NumericTld);
    }
    Ok(name.into_owned())
}

/// Checks that `name` is already in normal form (what [`normalize`] returns).
///
/// # Errors
/// Returns a [`DomainError`] naming the first problem found.
pub fn check_normalized(name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::TooLong);
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DomainError::BadChar(c));
    }
    let mut labels = 0usize;
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(DomainError::BadLabel);
        }
        labels += 1;
    }
    if labels < 2 {
        return Err(DomainError::SingleLabel);
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(DomainError::IsAddress);
    }
    Ok(())
}

/// Start of every suffix hash (the fractional digits of pi, so no bit pattern is special).
const SEED: u64 = 0x243f_6a88_85a3_08d3;
/// Odd multiplier that spreads each absorbed word over the higher bits (2^64 / golden ratio).
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// Folds 8 bytes into a running hash: one multiply per word rather than one per byte, which
/// keeps the walk's dependency chain short.
#[inline]
fn absorb(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(MIX)
}

/// Finishes a running suffix hash so both its low bits (candidate lines) and high bits (filter)
/// mix.
#[inline]
fn finish(mut h: u64) -> u64 {
    // MurmurHash3's fmix64: the running hash alone leaves the low bits weak for power-of-two
    // tables.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a suffix `len` bytes long, from the running hash and the bytes not yet folded.
#[inline]
fn suffix_hash(h: u64, pending: u64, len: usize) -> u64 {
    finish(absorb(h, pending) ^ len as u64)
}

/// The hash of a whole normalised name, equal to the last suffix hash [`for_each_suffix`] yields.
pub fn name_hash(name: &str) -> u64 {
    let mut last = 0;
    for_each_suffix(name.as_bytes(), |_, h| {
        last = h;
        true
    });
    last
}

/// Every byte of a word set to 1.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
const HIGHS: u64 = 0x8080_8080_8080_8080;
/// The low seven bits of every byte of a word.
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// ASCII-lower-cases the eight bytes of `w` at once; other bytes are left as they are. (No byte
/// carries into the next: each sum stays below 0x100.)
#[inline]
fn lower8(w: u64) -> u64 {
    let low7 = w & LOWS;
    let at_least_a = low7.wrapping_add(ONES * u64::from(0x80 - b'A'));
    let above_z = low7.wrapping_add(ONES * u64::from(0x7f - b'Z'));
    let upper = at_least_a & !above_z & !w & HIGHS;
    w | (upper >> 2)
}

/// The high bit of each byte of `w` that is a dot, exactly (no borrow between bytes).
#[inline]
fn dots8(w: u64) -> u64 {
    let x = w ^ (ONES * u64::from(b'.'));
    !((x & LOWS).wrapping_add(LOWS) | x) & HIGHS
}

/// Calls `f(suffix_start, hash)` for every label suffix of `name`, shortest (the TLD) first,
/// ending with the whole name; lower-cases on the fly and allocates nothing.
///
/// The hash runs right to left, so each suffix's hash continues the previous one's: every byte
/// is hashed once however many suffixes there are. The name is read eight bytes at a time from
/// its end (little-endian words), lower-cased and searched for dots a word at a time, and each
/// full word is folded in with one multiply, so the cost is per word, not per byte. Only ASCII
/// case is folded; callers convert other names to IDNA ASCII first. `name` must not end in a
/// dot; stops early when `f` returns `false`.
#[inline]
pub fn for_each_suffix(name: &[u8], mut f: impl FnMut(usize, u64) -> bool) {
    let len = name.len();
    let mut h = SEED;
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(8);
        let Some(bytes) = name.get(start..end) else {
            return;
        };
        let mut buf = [0u8; 8];
        if let Some(dst) = buf.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        // Byte `j` of the word is `name[start + j]`; bytes past a short first word are zero.
        let w = lower8(u64::from_le_bytes(buf));
        let mut dots = dots8(w);
        while dots != 0 {
            let j = (63 - dots.leading_zeros()) as usize / 8;
            dots &= !(0x80u64 << (8 * j));
            let i = start + j;
            if i + 1 < len {
                // The suffix's bytes in this word: those right of the dot.
                let pending = w.checked_shr(8 * (j as u32 + 1)).unwrap_or(0);
                if !f(i + 1, suffix_hash(h, pending, len - i - 1)) {
                    return;
                }
            }
        }
        if bytes.len() == 8 {
            h = absorb(h, w);
        } else {
            // A short first word ends the walk: it is the whole name's pending bytes.
            f(0, suffix_hash(h, w, len));
            return;
        }
        end = start;
    }
    if len > 0 {
        f(0, suffix_hash(h, 0, len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_trailing_dot_and_wildcard_prefix_are_normalised_away() {
        assert_eq!(
            normalize(" Evil.EXAMPLE.com. ").as_deref(),
            Ok("evil.example.com")
        );
        assert_eq!(normalize("*.nanopool.org").as_deref(), Ok("nanopool.org"));
    }

    #[test]
    fn labels_starting_with_multibyte_characters_do_not_panic_the_ace_check() {
        // Found by the parser property test: the `xn--` check sliced inside a character.
        assert!(normalize("[ORéé").is_err());
        assert_eq!(normalize("éé.example").as_deref(), Ok("xn--9caa.example"));
    }

    #[test]
    fn unicode_and_punycode_spellings_normalise_to_one_name() {
        let a = normalize("Bücher.example");
        assert_eq!(a.as_deref(), Ok("xn--bcher-kva.example"));
        assert_eq!(normalize("XN--BCHER-KVA.example."), a);
    }

    #[test]
    fn names_with_spaces_single_labels_or_long_labels_are_refused() {
        assert_eq!(
            normalize("domain autuo.xicp.net"),
            Err(DomainError::BadChar(' '))
        );
        assert_eq!(normalize("localhost"), Err(DomainError::SingleLabel));
        assert_eq!(
            normalize(&format!("{}.com", "a".repeat(64))),
            Err(DomainError::BadLabel)
        );
        assert_eq!(normalize("a..com"), Err(DomainError::BadLabel));
        assert_eq!(normalize("1.2.3.4"), Err(DomainError::IsAddress));
        assert_eq!(normalize("999.1.1.1"), Err(DomainError::NumericTld));
        assert_eq!(normalize("example.123"), Err(DomainError::NumericTld));
        assert_eq!(
            normalize("1.2.3.4.in-addr.arpa").as_deref(),
            Ok("1.2.3.4.in-addr.arpa")
        );
        assert_eq!(normalize("3com.com").as_deref(), Ok("3com.com"));
        assert!(
            check_normalized("999.1.1.1").is_ok(),
            "old snapshots still load"
        );
        assert_eq!(normalize(""), Err(DomainError::Empty));
    }

    #[test]
    fn suffix_hashes_equal_the_hashes_of_the_suffix_names() {
        let mut seen = Vec::new();
        for_each_suffix(b"A.b.Example.COM", |start, h| {
            seen.push((start, h));
            true
        });
        let want: Vec<(usize, u64)> = [(12, "com"), (4, "example.com"), (2, "b.example.com")]
            .into_iter()
            .map(|(s, n)| (s, name_hash(n)))
            .chain([(0, name_hash("a.b.example.com"))])
            .collect();
        assert_eq!(seen, want);
    }

    /// The byte-at-a-time walk the word-at-a-time one replaced: the reference it must agree with.
    fn bytewise(name: &[u8]) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        let mut h = SEED;
        let mut pending = 0u64;
        let mut held = 0u32;
        let len = name.len();
        for (i, &b) in name.iter().enumerate().rev() {
            if b == b'.' && i + 1 < len {
                out.push((i + 1, suffix_hash(h, pending, len - i - 1)));
            }
            pending = (pending << 8) | u64::from(b.to_ascii_lowercase());
            held += 1;
            if held == 8 {
                h = absorb(h, pending);
                pending = 0;
                held = 0;
            }
        }
        if len > 0 {
            out.push((0, suffix_hash(h, pending, len)));
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn word_walk_agrees_with_the_bytewise_walk(
            name in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'.'),
                    b'A'..=b'Z',
                    b'a'..=b'z',
                    proptest::num::u8::ANY,
                ],
                0..40,
            ),
            stop_after in 0usize..12,
        ) {
            let mut seen = Vec::new();
            for_each_suffix(&name, |start, h| {
                seen.push((start, h));
                seen.len() <= stop_after
            });
            let mut want = bytewise(&name);
            want.truncate(stop_after + 1);
            proptest::prop_assert_eq!(seen, want);
        }
    }

    #[test]
    fn lower8_folds_only_ascii_capitals() {
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b, b'A', b, b'Z', b'@', b'[', b, 0xc1]);
            let want = u64::from_le_bytes(
                [b, b'A', b, b'Z', b'@', b'[', b, 0xc1].map(|c| c.to_ascii_lowercase()),
            );
            assert_eq!(lower8(w), want, "byte {b:#x}");
            let d = dots8(w);
            for (j, c) in w.to_le_bytes().iter().enumerate() {
                assert_eq!(d >> (8 * j + 7) & 1 == 1, *c == b'.', "byte {b:#x} at {j}");
            }
        }
    }

    #[test]
    fn different_names_hash_differently() {
        assert_ne!(name_hash("evil.com"), name_hash("live.com"));
        assert_ne!(name_hash("a.com"), name_hash("b.com"));
    }
}
