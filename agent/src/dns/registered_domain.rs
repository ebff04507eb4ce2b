//! The registered domain of a name (`example.co.uk` for `a.b.example.co.uk`): what DNS
//! summaries group by, so one domain's many random sub-labels (tunnelling, DGA) land together.

/// The registered domain by the public suffix list, else the last two labels.
///
/// `name` is expected lower case without a trailing dot, as [`super::message`] gives it.
pub fn registered_domain(name: &str) -> &str {
    let name = name.strip_suffix('.').unwrap_or(name);
    psl::domain_str(name).unwrap_or_else(|| last_two_labels(name))
}

fn last_two_labels(name: &str) -> &str {
    let mut dots = name.rmatch_indices('.');
    let _last = dots.next();
    match dots.next() {
        Some((at, _)) => name.get(at.saturating_add(1)..).unwrap_or(name),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domain_follows_the_public_suffix_list() {
        assert_eq!(registered_domain("www.example.com"), "example.com");
        assert_eq!(registered_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("x1.t1.biillpi.com"), "biillpi.com");
        assert_eq!(
            registered_domain("bucket.s3.amazonaws.com"),
            "bucket.s3.amazonaws.com"
        );
        assert_eq!(registered_domain("example.com."), "example.com");
    }

    #[test]
    fn names_the_list_cannot_place_fall_back_to_the_last_two_labels() {
        assert_eq!(last_two_labels("a.b.pirate.sea"), "pirate.sea");
        assert_eq!(last_two_labels("localhost"), "localhost");
        assert_eq!(last_two_labels(""), "");
        assert_eq!(registered_domain("com"), "com");
        assert_eq!(registered_domain(""), "");
    }
}
