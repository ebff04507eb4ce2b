//! Series sampled at scrape time: a closure reads the daemon's existing counters and pushes
//! values into [`Samples`]; [`SampledCollector`] encodes them for the registry. The counting
//! code stays as it was (plain atomics, per-batch updates); only the scrape pays.

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// One label set: fixed keys, values from fixed enums (never addresses or account ids).
type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

#[derive(Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    counter: bool,
    points: Vec<(Labels, Value)>,
}

/// Values gathered during one scrape, grouped into families by name.
#[derive(Debug, Default)]
pub struct Samples {
    families: Vec<Family>,
}

impl Samples {
    fn family(&mut self, name: &'static str, help: &'static str, counter: bool) -> &mut Family {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name,
                    help,
                    counter,
                    points: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }

    /// A monotonic counter; `name` without `_total` (the encoder appends it).
    pub fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.counter_with(name, help, &[], value);
    }

    /// A counter with labels.
    pub fn counter_with(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: u64,
    ) {
        let labels = own(labels);
        self.family(name, help, true)
            .points
            .push((labels, Value::Counter(value)));
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.gauge_with(name, help, &[], value);
    }

    /// A gauge with labels.
    pub fn gauge_with(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        let labels = own(labels);
        self.family(name, help, false)
            .points
            .push((labels, Value::Gauge(value)));
    }
}

fn own(labels: &[(&'static str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Owned((*v).to_owned())))
        .collect()
}

/// A [`Collector`] that calls `sample` on every scrape.
pub struct SampledCollector<F> {
    sample: F,
}

impl<F> std::fmt::Debug for SampledCollector<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampledCollector")
    }
}

impl<F> SampledCollector<F>
where
    F: Fn(&mut Samples) + Send + Sync + 'static,
{
    /// A collector reading its values with `sample`.
    pub fn new(sample: F) -> Self {
        Self { sample }
    }
}

impl<F> Collector for SampledCollector<F>
where
    F: Fn(&mut Samples) + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut samples = Samples::default();
        (self.sample)(&mut samples);
        for family in &samples.families {
            let kind = if family.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            for (labels, value) in &family.points {
                if labels.is_empty() {
                    encode_value(&mut metric, value)?;
                } else {
                    encode_value(&mut metric.encode_family(labels)?, value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    target: &mut prometheus_client::encoding::MetricEncoder<'_>,
    value: &Value,
) -> Result<(), std::fmt::Error> {
    match value {
        Value::Counter(v) => target.encode_counter::<NoLabelSet, _, u64>(v, None),
        Value::Gauge(v) => target.encode_gauge(v),
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn sampled_series_are_encoded_with_their_labels_at_scrape_time() {
        let value = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(5));
        let read = std::sync::Arc::clone(&value);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SampledCollector::new(move |s: &mut Samples| {
            let v = read.load(std::sync::atomic::Ordering::Relaxed);
            s.counter("picket_test_packets", "Packets.", v);
            s.counter_with("picket_test_drops", "Drops.", &[("cause", "kernel")], 2);
            s.counter_with("picket_test_drops", "Drops.", &[("cause", "internal")], 3);
            s.gauge("picket_test_depth", "Depth.", 1.5);
        })));
        value.store(7, std::sync::atomic::Ordering::Relaxed);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("picket_test_packets_total 7"), "{text}");
        assert!(
            text.contains("picket_test_drops_total{cause=\"kernel\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("picket_test_drops_total{cause=\"internal\"} 3"),
            "{text}"
        );
        assert!(text.contains("picket_test_depth 1.5"), "{text}");
        assert_eq!(text.matches("# TYPE picket_test_drops counter").count(), 1);
    }
}
