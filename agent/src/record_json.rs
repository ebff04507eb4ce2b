//! Records as JSON, byte for byte what `serde_json::to_writer` writes for them (the prost
//! types derive `Serialize`), for `replay`'s output and its benchmark.
//!
//! Flow summaries are most of a replay's records, and serde's derived code writes each of
//! their 25 field names through `serde_json`'s escaping loop, one byte at a time; here the
//! names are constant bytes and only the values go through `serde_json`'s serializer, so the
//! numbers and the strings' escaping are `serde_json`'s own. Other records are left to
//! `serde_json::to_writer`. `tests` check both ways agree on arbitrary summaries.

use picket_proto::v1::{FlowSummary, Record, record};
use serde::Serializer as _;

/// Appends `record` to `out` as one JSON object (no newline), as `serde_json::to_writer`
/// would.
///
/// # Errors
///
/// What `serde_json` reports for a record it cannot write (none of Picket's records).
pub fn write_record(out: &mut Vec<u8>, record: &Record) -> serde_json::Result<()> {
    match &record.record {
        Some(record::Record::Flow(flow)) => write_flow(out, flow),
        _ => serde_json::to_writer(out, record),
    }
}

/// A serializer for one value: a few words on the stack, the formatter has no state.
fn json(out: &mut Vec<u8>) -> serde_json::Serializer<&mut Vec<u8>> {
    serde_json::Serializer::new(out)
}

fn write_flow(out: &mut Vec<u8>, flow: &FlowSummary) -> serde_json::Result<()> {
    // Every field named, so a field added to the message fails to compile here rather than
    // going missing from the output; the order is the struct's, which serde follows.
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
    out.extend_from_slice(br#"{"record":{"Flow":{"interval_start_ms":"#);
    json(out).serialize_i64(*interval_start_ms)?;
    out.extend_from_slice(br#","interval_end_ms":"#);
    json(out).serialize_i64(*interval_end_ms)?;
    out.extend_from_slice(br#","direction":"#);
    json(out).serialize_i32(*direction)?;
    out.extend_from_slice(br#","local_addr":"#);
    json(out).serialize_str(local_addr)?;
    out.extend_from_slice(br#","remote_addr":"#);
    json(out).serialize_str(remote_addr)?;
    out.extend_from_slice(br#","protocol":"#);
    json(out).serialize_u32(*protocol)?;
    out.extend_from_slice(br#","service_port":"#);
    json(out).serialize_u32(*service_port)?;
    let counters = [
        (&br#","connections":"#[..], *connections),
        (br#","packets_out":"#, *packets_out),
        (br#","packets_in":"#, *packets_in),
        (br#","bytes_out":"#, *bytes_out),
        (br#","bytes_in":"#, *bytes_in),
        (br#","unanswered_syns":"#, *unanswered_syns),
        (br#","resets":"#, *resets),
        (br#","distinct_ports":"#, *distinct_ports),
    ];
    for (name, value) in counters {
        out.extend_from_slice(name);
        json(out).serialize_u64(value)?;
    }
    out.extend_from_slice(br#","first_seen_ms":"#);
    json(out).serialize_i64(*first_seen_ms)?;
    out.extend_from_slice(br#","last_seen_ms":"#);
    json(out).serialize_i64(*last_seen_ms)?;
    out.extend_from_slice(br#","remote_name":"#);
    json(out).serialize_str(remote_name)?;
    out.extend_from_slice(br#","tcp_flags":"#);
    json(out).serialize_u32(*tcp_flags)?;
    out.extend_from_slice(br#","remote_answered":"#);
    json(out).serialize_bool(*remote_answered)?;
    out.extend_from_slice(br#","short_connections":"#);
    json(out).serialize_u64(*short_connections)?;
    out.extend_from_slice(br#","app_protocol":"#);
    json(out).serialize_str(app_protocol)?;
    out.extend_from_slice(br#","tls_server_names":["#);
    for (i, name) in tls_server_names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json(out).serialize_str(name)?;
    }
    out.extend_from_slice(br#"],"interface":"#);
    json(out).serialize_str(interface)?;
    out.extend_from_slice(br#","failed_ports":["#);
    for (i, port) in failed_ports.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json(out).serialize_u32(*port)?;
    }
    out.extend_from_slice(b"]}}}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::{DnsSummary, HostStats};
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

    #[test]
    fn other_records_are_left_to_serde_json() {
        let records = [
            Record { record: None },
            Record {
                record: Some(record::Record::Dns(DnsSummary {
                    registered_domain: "x\"y".to_owned(),
                    ..DnsSummary::default()
                })),
            },
            Record {
                record: Some(record::Record::HostStats(HostStats {
                    packets: 7,
                    ..HostStats::default()
                })),
            },
        ];
        for record in &records {
            assert_eq!(written(record), serde_written(record));
        }
    }
}
