//! Records as JSON, byte for byte what `serde_json::to_writer` writes for them (the prost
//! types derive `Serialize`), for `replay`'s output and its benchmark.
//!
//! Flow and DNS summaries are nearly all of a replay's records, and serde's derived code
//! writes each of their field names through `serde_json`'s escaping loop, one byte at a time;
//! here the names are constant bytes, the numbers go through `serde_json`'s serializer, and a
//! string is copied between quotes when it holds none of the bytes `serde_json` escapes (it
//! goes through `serde_json` otherwise). `HostStats` is written the same way; intel hits,
//! rare, are left to `serde_json::to_writer`. `tests` check both ways agree on arbitrary
//! records.

use picket_proto::v1::{Counter, DnsSummary, FlowSummary, HostStats, Record, record};
use serde::Serializer as _;

/// Appends `record` to `out` as one JSON object (no newline), as `serde_json::to_writer`
/// would.
///
/// # Errors
///
/// What `serde_json` reports for a record it cannot write (none of Picket's records).
pub fn write_record(out: &mut Vec<u8>, record: &Record) -> serde_json::Result<()> {
    match &record.record {
        Some(record::Record::Flow(flow)) => write_flow(&mut Json(out), flow),
        Some(record::Record::Dns(dns)) => write_dns(&mut Json(out), dns),
        Some(record::Record::HostStats(stats)) => write_host_stats(&mut Json(out), stats),
        _ => serde_json::to_writer(out, record),
    }
}

/// JSON text being appended to a buffer. The one-line helpers are marked `#[inline]`: left
/// to the compiler, whether they were inlined changed with unrelated code.
struct Json<'a>(&'a mut Vec<u8>);

impl Json<'_> {
    /// A serializer for one value: a few words on the stack, the formatter has no state.
    #[inline]
    fn serde(&mut self) -> serde_json::Serializer<&mut Vec<u8>> {
        serde_json::Serializer::new(&mut *self.0)
    }

    /// Constant text: punctuation and field names. Its length a constant, the copy is a few
    /// moves rather than a call to `memcpy`.
    #[inline(always)]
    fn raw<const N: usize>(&mut self, text: &[u8; N]) {
        self.0.extend_from_slice(text);
    }

    fn str(&mut self, value: &str) -> serde_json::Result<()> {
        // `serde_json` escapes the control bytes, `"` and `\` and copies every other byte
        // (its `ESCAPE` table); a string without them needs no trip through its loop.
        if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.0.reserve(value.len() + 2);
            self.0.push(b'"');
            self.0.extend_from_slice(value.as_bytes());
            self.0.push(b'"');
            Ok(())
        } else {
            self.serde().serialize_str(value)
        }
    }

    fn strs(&mut self, values: &[String]) -> serde_json::Result<()> {
        self.0.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.str(value)?;
        }
        self.0.push(b']');
        Ok(())
    }

    #[inline]
    fn u64(&mut self, value: u64) -> serde_json::Result<()> {
        self.serde().serialize_u64(value)
    }

    #[inline]
    fn i64(&mut self, value: i64) -> serde_json::Result<()> {
        self.serde().serialize_i64(value)
    }

    #[inline]
    fn u32(&mut self, value: u32) -> serde_json::Result<()> {
        self.serde().serialize_u32(value)
    }

    #[inline]
    fn i32(&mut self, value: i32) -> serde_json::Result<()> {
        self.serde().serialize_i32(value)
    }

    #[inline]
    fn f64(&mut self, value: f64) -> serde_json::Result<()> {
        self.serde().serialize_f64(value)
    }

    #[inline]
    fn bool(&mut self, value: bool) {
        if value {
            self.raw(b"true");
        } else {
            self.raw(b"false");
        }
    }

    /// A list of `Counter` messages.
    fn counters(&mut self, counters: &[Counter]) -> serde_json::Result<()> {
        self.0.push(b'[');
        for (i, Counter { kind, count }) in counters.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.raw(br#"{"kind":"#);
            self.str(kind)?;
            self.raw(br#","count":"#);
            self.u64(*count)?;
            self.0.push(b'}');
        }
        self.0.push(b']');
        Ok(())
    }
}

// Each writer names every field, so a field added to a message fails to compile there rather
// than going missing from the output; the order is the struct's, which serde follows.

fn write_flow(out: &mut Json<'_>, flow: &FlowSummary) -> serde_json::Result<()> {
    let FlowSummary {
        interval_start_ms,
        interval_end_ms,
        direction,
        local_addr,
        remote_addr,
        protocol,
        service_port,
        connections,
        packets_out,
        packets_in,
        bytes_out,
        bytes_in,
        unanswered_syns,
        resets,
        distinct_ports,
        first_seen_ms,
        last_seen_ms,
        remote_name,
        tcp_flags,
        remote_answered,
        short_connections,
        app_protocol,
        tls_server_names,
        interface,
        failed_ports,
    } = flow;
    out.raw(br#"{"record":{"Flow":{"interval_start_ms":"#);
    out.i64(*interval_start_ms)?;
    out.raw(br#","interval_end_ms":"#);
    out.i64(*interval_end_ms)?;
    out.raw(br#","direction":"#);
    out.i32(*direction)?;
    out.raw(br#","local_addr":"#);
    out.str(local_addr)?;
    out.raw(br#","remote_addr":"#);
    out.str(remote_addr)?;
    out.raw(br#","protocol":"#);
    out.u32(*protocol)?;
    out.raw(br#","service_port":"#);
    out.u32(*service_port)?;
    out.raw(br#","connections":"#);
    out.u64(*connections)?;
    out.raw(br#","packets_out":"#);
    out.u64(*packets_out)?;
    out.raw(br#","packets_in":"#);
    out.u64(*packets_in)?;
    out.raw(br#","bytes_out":"#);
    out.u64(*bytes_out)?;
    out.raw(br#","bytes_in":"#);
    out.u64(*bytes_in)?;
    out.raw(br#","unanswered_syns":"#);
    out.u64(*unanswered_syns)?;
    out.raw(br#","resets":"#);
    out.u64(*resets)?;
    out.raw(br#","distinct_ports":"#);
    out.u64(*distinct_ports)?;
    out.raw(br#","first_seen_ms":"#);
    out.i64(*first_seen_ms)?;
    out.raw(br#","last_seen_ms":"#);
    out.i64(*last_seen_ms)?;
    out.raw(br#","remote_name":"#);
    out.str(remote_name)?;
    out.raw(br#","tcp_flags":"#);
    out.u32(*tcp_flags)?;
    out.raw(br#","remote_answered":"#);
    out.bool(*remote_answered);
    out.raw(br#","short_connections":"#);
    out.u64(*short_connections)?;
    out.raw(br#","app_protocol":"#);
    out.str(app_protocol)?;
    out.raw(br#","tls_server_names":"#);
    out.strs(tls_server_names)?;
    out.raw(br#","interface":"#);
    out.str(interface)?;
    out.raw(br#","failed_ports":["#);
    for (i, port) in failed_ports.iter().enumerate() {
        if i > 0 {
            out.raw(b",");
        }
        out.u32(*port)?;
    }
    out.raw(b"]}}}");
    Ok(())
}

fn write_dns(out: &mut Json<'_>, dns: &DnsSummary) -> serde_json::Result<()> {
    let DnsSummary {
        interval_start_ms,
        interval_end_ms,
        client_addr,
        registered_domain,
        queries,
        queries_by_type,
        responses,
        nxdomain,
        distinct_names,
        max_label_len,
        mean_label_len,
        mean_label_entropy,
        example_names,
        answers,
        resolvers,
        first_seen_ms,
        last_seen_ms,
        unanswered,
        max_name_len,
    } = dns;
    out.raw(br#"{"record":{"Dns":{"interval_start_ms":"#);
    out.i64(*interval_start_ms)?;
    out.raw(br#","interval_end_ms":"#);
    out.i64(*interval_end_ms)?;
    out.raw(br#","client_addr":"#);
    out.str(client_addr)?;
    out.raw(br#","registered_domain":"#);
    out.str(registered_domain)?;
    out.raw(br#","queries":"#);
    out.u64(*queries)?;
    out.raw(br#","queries_by_type":["#);
    for (i, type_count) in queries_by_type.iter().enumerate() {
        let picket_proto::v1::TypeCount { qtype, count } = type_count;
        if i > 0 {
            out.0.push(b',');
        }
        out.raw(br#"{"qtype":"#);
        out.str(qtype)?;
        out.raw(br#","count":"#);
        out.u64(*count)?;
        out.raw(b"}");
    }
    out.raw(br#"],"responses":"#);
    out.u64(*responses)?;
    out.raw(br#","nxdomain":"#);
    out.u64(*nxdomain)?;
    out.raw(br#","distinct_names":"#);
    out.u64(*distinct_names)?;
    out.raw(br#","max_label_len":"#);
    out.u32(*max_label_len)?;
    out.raw(br#","mean_label_len":"#);
    out.f64(*mean_label_len)?;
    out.raw(br#","mean_label_entropy":"#);
    out.f64(*mean_label_entropy)?;
    out.raw(br#","example_names":"#);
    out.strs(example_names)?;
    out.raw(br#","answers":["#);
    for (i, answer) in answers.iter().enumerate() {
        let picket_proto::v1::DnsAnswer {
            name,
            rtype,
            data,
            ttl,
        } = answer;
        if i > 0 {
            out.0.push(b',');
        }
        out.raw(br#"{"name":"#);
        out.str(name)?;
        out.raw(br#","rtype":"#);
        out.str(rtype)?;
        out.raw(br#","data":"#);
        out.str(data)?;
        out.raw(br#","ttl":"#);
        out.u32(*ttl)?;
        out.raw(b"}");
    }
    out.raw(br#"],"resolvers":"#);
    out.strs(resolvers)?;
    out.raw(br#","first_seen_ms":"#);
    out.i64(*first_seen_ms)?;
    out.raw(br#","last_seen_ms":"#);
    out.i64(*last_seen_ms)?;
    out.raw(br#","unanswered":"#);
    out.u64(*unanswered)?;
    out.raw(br#","max_name_len":"#);
    out.u32(*max_name_len)?;
    out.raw(b"}}}");
    Ok(())
}

fn write_host_stats(out: &mut Json<'_>, stats: &HostStats) -> serde_json::Result<()> {
    let HostStats {
        interval_start_ms,
        interval_end_ms,
        packets,
        bytes,
        kernel_drops,
        internal_drops,
        decode_errors,
        skipped,
        flows_active,
        flows_evicted,
        dns_malformed,
        records_dropped,
        intel_hits,
        addresses,
        public_ip,
        nat_checks,
    } = stats;
    out.raw(br#"{"record":{"HostStats":{"interval_start_ms":"#);
    out.i64(*interval_start_ms)?;
    out.raw(br#","interval_end_ms":"#);
    out.i64(*interval_end_ms)?;
    out.raw(br#","packets":"#);
    out.u64(*packets)?;
    out.raw(br#","bytes":"#);
    out.u64(*bytes)?;
    out.raw(br#","kernel_drops":"#);
    out.u64(*kernel_drops)?;
    out.raw(br#","internal_drops":"#);
    out.u64(*internal_drops)?;
    out.raw(br#","decode_errors":"#);
    out.counters(decode_errors)?;
    out.raw(br#","skipped":"#);
    out.counters(skipped)?;
    out.raw(br#","flows_active":"#);
    out.u64(*flows_active)?;
    out.raw(br#","flows_evicted":"#);
    out.u64(*flows_evicted)?;
    out.raw(br#","dns_malformed":"#);
    out.u64(*dns_malformed)?;
    out.raw(br#","records_dropped":"#);
    out.counters(records_dropped)?;
    out.raw(br#","intel_hits":"#);
    out.u64(*intel_hits)?;
    out.raw(br#","addresses":"#);
    out.strs(addresses)?;
    out.raw(br#","public_ip":"#);
    out.str(public_ip)?;
    out.raw(br#","nat_checks":"#);
    out.counters(nat_checks)?;
    out.raw(b"}}}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::{DnsAnswer, IntelHit, TypeCount};
    use proptest::prelude::*;

    use super::*;

    fn written(record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        write_record(&mut out, record).expect("writes");
        out
    }

    fn serde_written(record: &Record) -> Vec<u8> {
        serde_json::to_vec(record).expect("serde writes")
    }

    /// Strings that need escaping, non-ASCII ones and plain ones.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.:-]{0,20}",
            any::<String>(),
            Just("quote\" back\\slash \u{0} \u{1f} \u{7f} é 🦀".to_owned()),
        ]
    }

    prop_compose! {
        fn flow()(
            times in any::<[i64; 4]>(),
            direction in any::<i32>(),
            addrs in (text(), text()),
            small in any::<[u32; 3]>(),
            counters in any::<[u64; 9]>(),
            remote_answered in any::<bool>(),
            names in (text(), text(), text()),
            tls_server_names in prop::collection::vec(text(), 0..5),
            failed_ports in prop::collection::vec(any::<u32>(), 0..17),
        ) -> FlowSummary {
            FlowSummary {
                interval_start_ms: times[0],
                interval_end_ms: times[1],
                direction,
                local_addr: addrs.0,
                remote_addr: addrs.1,
                protocol: small[0],
                service_port: small[1],
                connections: counters[0],
                packets_out: counters[1],
                packets_in: counters[2],
                bytes_out: counters[3],
                bytes_in: counters[4],
                unanswered_syns: counters[5],
                resets: counters[6],
                distinct_ports: counters[7],
                first_seen_ms: times[2],
                last_seen_ms: times[3],
                remote_name: names.0,
                tcp_flags: small[2],
                remote_answered,
                short_connections: counters[8],
                app_protocol: names.1,
                tls_server_names,
                interface: names.2,
                failed_ports,
            }
        }
    }

    proptest! {
        #[test]
        fn flow_summaries_are_written_as_serde_json_writes_them(flow in flow()) {
            let record = Record { record: Some(record::Record::Flow(flow)) };
            prop_assert_eq!(written(&record), serde_written(&record));
        }
    }

    #[test]
    fn a_default_flow_summary_is_written_as_serde_json_writes_it() {
        let record = Record {
            record: Some(record::Record::Flow(FlowSummary::default())),
        };
        assert_eq!(written(&record), serde_written(&record));
    }

    fn counters() -> impl Strategy<Value = Vec<Counter>> {
        prop::collection::vec(
            (text(), any::<u64>()).prop_map(|(kind, count)| Counter { kind, count }),
            0..4,
        )
    }

    /// Finite values of every size, and the non-finite ones `serde_json` writes as `null`.
    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![any::<f64>(), 0.0..64.0, Just(f64::NAN), Just(f64::INFINITY)]
    }

    prop_compose! {
        fn dns()(
            times in any::<[i64; 4]>(),
            strings in (text(), text()),
            counters in any::<[u64; 5]>(),
            small in any::<[u32; 2]>(),
            means in (float(), float()),
            queries_by_type in prop::collection::vec(
                (text(), any::<u64>()).prop_map(|(qtype, count)| TypeCount { qtype, count }),
                0..4,
            ),
            example_names in prop::collection::vec(text(), 0..5),
            answers in prop::collection::vec(
                (text(), text(), text(), any::<u32>())
                    .prop_map(|(name, rtype, data, ttl)| DnsAnswer { name, rtype, data, ttl }),
                0..4,
            ),
            resolvers in prop::collection::vec(text(), 0..3),
        ) -> DnsSummary {
            DnsSummary {
                interval_start_ms: times[0],
                interval_end_ms: times[1],
                client_addr: strings.0,
                registered_domain: strings.1,
                queries: counters[0],
                queries_by_type,
                responses: counters[1],
                nxdomain: counters[2],
                distinct_names: counters[3],
                max_label_len: small[0],
                mean_label_len: means.0,
                mean_label_entropy: means.1,
                example_names,
                answers,
                resolvers,
                first_seen_ms: times[2],
                last_seen_ms: times[3],
                unanswered: counters[4],
                max_name_len: small[1],
            }
        }
    }

    prop_compose! {
        fn host_stats()(
            times in any::<[i64; 2]>(),
            numbers in any::<[u64; 8]>(),
            lists in (counters(), counters(), counters(), counters()),
            addresses in prop::collection::vec(text(), 0..4),
            public_ip in text(),
        ) -> HostStats {
            HostStats {
                interval_start_ms: times[0],
                interval_end_ms: times[1],
                packets: numbers[0],
                bytes: numbers[1],
                kernel_drops: numbers[2],
                internal_drops: numbers[3],
                decode_errors: lists.0,
                skipped: lists.1,
                flows_active: numbers[4],
                flows_evicted: numbers[5],
                dns_malformed: numbers[6],
                records_dropped: lists.2,
                intel_hits: numbers[7],
                addresses,
                public_ip,
                nat_checks: lists.3,
            }
        }
    }

    proptest! {
        #[test]
        fn dns_summaries_are_written_as_serde_json_writes_them(dns in dns()) {
            let record = Record { record: Some(record::Record::Dns(dns)) };
            prop_assert_eq!(written(&record), serde_written(&record));
        }

        #[test]
        fn host_stats_are_written_as_serde_json_writes_them(stats in host_stats()) {
            let record = Record { record: Some(record::Record::HostStats(stats)) };
            prop_assert_eq!(written(&record), serde_written(&record));
        }
    }

    #[test]
    fn default_records_are_written_as_serde_json_writes_them() {
        let records = [
            Record {
                record: Some(record::Record::Dns(DnsSummary::default())),
            },
            Record {
                record: Some(record::Record::HostStats(HostStats::default())),
            },
        ];
        for record in &records {
            assert_eq!(written(record), serde_written(record));
        }
    }

    #[test]
    fn other_records_are_left_to_serde_json() {
        let records = [
            Record { record: None },
            Record {
                record: Some(record::Record::IntelHit(IntelHit {
                    matched_value: "x\"y".to_owned(),
                    ..IntelHit::default()
                })),
            },
        ];
        for record in &records {
            assert_eq!(written(record), serde_written(record));
        }
    }
}
