//! Fuzz the packet decoder: the first byte picks the link type, the rest is the frame.
//!
//! Run: `cargo +nightly fuzz run decode` from `agent/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket_agent::capture::LinkType;
use picket_agent::decode::{DecodeStats, FragmentPorts, Outcome, decode};

const LINK_TYPES: [LinkType; 9] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_LEGACY,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINK_TYPES[usize::from(*selector) % LINK_TYPES.len()];
    let snapped = selector & 0x80 != 0;
    let mut stats = DecodeStats::default();
    let mut fragments = FragmentPorts::new(4);
    let result = decode(link, frame, snapped);
    stats.record(&result);
    if let Ok(Outcome::Decoded(d)) = result {
        assert!(d.payload.len() <= frame.len());
        let _ = fragments.attribute(d);
    }
});
