//! Property tests standing in for fuzzing: no parser panics on arbitrary input, every reported
//! line number lies inside the file, and every loaded indicator passes the shared rules.

use picket_intel::{
    IndicatorValue, ListFormat, ListKind, ListOptions, SuricataCategories, domain, parse_list,
};
use proptest::prelude::*;
use strum::IntoEnumIterator;

/// Text made of pieces every format uses, so inputs get past the first checks.
fn feedish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        "1.2.3.4",
        "10.0.0.1",
        "45.95.19.50/24",
        "2a06:e480::/29",
        "evil.example",
        "xn--bcher-kva.example",
        "#",
        ";",
        ",",
        "\t",
        "\n",
        "\r\n",
        " ",
        "#fields",
        "indicator",
        "indicator_type",
        "Intel::ADDR",
        "Intel::DOMAIN",
        "Intel::URL",
        "Indicator type",
        "IPv4",
        "domain",
        "100",
        "1",
        "[",
        "]",
        "'",
        "OR",
        "AND",
        "ipv4-addr:value",
        "=",
        "{",
        "}",
        "\"",
        ":",
        "objects",
        "type",
        "indicator",
        "pattern",
        "255.255.255.255",
        "0.0.0.0",
        "ip",
        "category",
        "score",
        "reportId",
        "SBL1",
        "\u{fffd}",
        "é",
    ]);
    prop::collection::vec(piece, 0..80).prop_map(|v| v.concat().into_bytes())
}

fn check(format: ListFormat, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut opts = ListOptions::new("p", ListKind::Threat).format(format);
    opts.url_hosts = true;
    let (cats, _) = SuricataCategories::parse("c", b"1,CnC,ET CNC test\n");
    opts.suricata_categories = Some(cats);
    let Ok(list) = parse_list("p", bytes, &opts) else {
        return Ok(()); // a whole-file error (STIX that is not JSON) is a fine answer
    };
    let lines = u32::try_from(bytes.split(|&b| b == b'\n').count()).unwrap_or(u32::MAX);
    for issue in list.rejected.iter().chain(&list.ignored) {
        prop_assert!(issue.line <= lines, "{issue} beyond {lines} lines");
    }
    for ind in &list.indicators {
        match &ind.value {
            IndicatorValue::Domain(d) => prop_assert!(domain::check_normalized(d).is_ok(), "{d}"),
            IndicatorValue::Net(n) => {
                prop_assert_eq!(n.trunc(), *n);
                prop_assert!(picket_intel::reserved::containing_range(n).is_none(), "{n}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for format in ListFormat::iter() {
            check(format, &bytes)?;
        }
        let _ = ListFormat::detect(&bytes);
        let _ = SuricataCategories::parse("c", &bytes);
    }

    #[test]
    fn no_parser_panics_on_feed_like_text(bytes in feedish()) {
        for format in ListFormat::iter() {
            check(format, &bytes)?;
        }
        let _ = ListFormat::detect(&bytes);
    }
}
