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

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Finishes a running suffix hash so both its low bits (slot) and high bits (fingerprint) mix.
#[inline]
fn finish(mut h: u64) -> u64 {
    // MurmurHash3's fmix64: FNV alone leaves the low bits weak for power-of-two tables.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a whole normalised name, equal to the last suffix hash [`for_each_suffix`] yields.
pub fn name_hash(name: &str) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in name.as_bytes().iter().rev() {
        h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME);
    }
    finish(h)
}

/// Calls `f(suffix_start, hash)` for every label suffix of `name`, shortest (the TLD) first,
/// ending with the whole name; lower-cases on the fly and allocates nothing.
///
/// `name` must not end in a dot; stops early when `f` returns `false`.
#[inline]
pub fn for_each_suffix(name: &[u8], mut f: impl FnMut(usize, u64) -> bool) {
    let mut h = FNV_OFFSET;
    let mut i = name.len();
    while i > 0 {
        i -= 1;
        let b = name.get(i).copied().unwrap_or(b'.');
        if b == b'.' && i + 1 < name.len() && !f(i + 1, finish(h)) {
            return;
        }
        h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME);
    }
    if !name.is_empty() {
        f(0, finish(h));
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

    #[test]
    fn different_names_hash_differently() {
        assert_ne!(name_hash("evil.com"), name_hash("live.com"));
        assert_ne!(name_hash("a.com"), name_hash("b.com"));
    }
}
