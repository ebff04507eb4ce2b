//! CloudTrail throughput: gzip log files in S3's layout → reader → normalise → every detector →
//! findings, beside the floor of merely gunzipping and parsing the same files as JSON
//! (`serde_json::Value`), in the same process.
//!
//! `cargo bench -p picket-aggregator --bench cloudtrail` (`CT_BENCH_EVENTS` sets the event
//! count, default 500 000). Prints figures; asserts nothing about time.
//!
//! For profiling: `CT_BENCH_DIR` keeps the generated files in that folder and reuses them on
//! the next run; `CT_BENCH_STAGES` (comma-separated, default all) picks among `floor`,
//! `gunzip`, `read` (gunzip + read + normalise), `full` and `detectors` (each CloudTrail
//! detector's own time per event, over events already in memory).
//!
//! Each stage prints its wall time and, where the kernel tells, this thread's CPU time
//! (`/proc/thread-self/schedstat`): on a loaded shared machine the wall clock also counts time
//! spent waiting for a core, the CPU time mostly does not, so compare rates by CPU time there.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use picket_aggregator::cloudtrail::reader::{ReadTotals, Reader, collect_files};
use picket_aggregator::detectors::window::SharedNames;
use picket_aggregator::detectors::{
    DetectorContext, DetectorsConfig, Event, EventFacts, EventKind, Observation,
};
use picket_aggregator::findings::engine::EngineConfig;
use picket_aggregator::findings::suppression::SuppressionRules;
use picket_aggregator::pipeline::{Clock, Pipeline};
use serde_json::{Value, json};

const EVENTS_PER_FILE: usize = 5_000;
const ACCOUNT: &str = "111122223333";

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn identity(rng: &mut Rng) -> Value {
    let n = rng.below(2_000);
    if rng.below(4) == 0 {
        json!({"type": "IAMUser", "principalId": format!("AIDA{n:016}"), "arn": format!("arn:aws:iam::{ACCOUNT}:user/user{n}"), "accountId": ACCOUNT, "accessKeyId": format!("AKIA{n:016}"), "userName": format!("user{n}")})
    } else {
        json!({"type": "AssumedRole", "principalId": format!("AROA{n:016}:i-0{n:016x}"), "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app{}/i-0{n:016x}", n % 50), "accountId": ACCOUNT, "accessKeyId": format!("ASIA{n:016}"),
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": format!("AROA{n:016}"), "arn": format!("arn:aws:iam::{ACCOUNT}:role/app{}", n % 50), "accountId": ACCOUNT, "userName": format!("app{}", n % 50)},
            "webIdFederationData": {}, "attributes": {"creationDate": "2024-05-01T09:00:00Z", "mfaAuthenticated": "false"}, "ec2RoleDelivery": "2.0"}})
    }
}

fn event(rng: &mut Rng, i: usize, t0: i64) -> Value {
    let ms = t0 + (i as i64) * 20;
    let time = picket_aggregator::findings::model::Timestamp(ms - ms % 1000).to_string();
    let time = format!("{}Z", &time[..19]);
    let ip = format!(
        "{}.{}.{}.{}",
        20 + rng.below(180),
        rng.below(256),
        rng.below(256),
        1 + rng.below(254)
    );
    let agent = match rng.below(4) {
        0 => {
            "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0-1014-aws exe/x86_64.ubuntu.22 prompt/off command/s3.cp"
        }
        1 => {
            "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.6 cfg/retry-mode#legacy Botocore/1.34.0"
        }
        2 => {
            "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.141.0"
        }
        _ => {
            "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10.201-168.748.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.372-b08 java/1.8.0_372]"
        }
    };
    let bucket = format!("data-bucket-{}", rng.below(300));
    let (source, name, read_only, params, response) = match rng.below(10) {
        0 | 1 => (
            "s3.amazonaws.com",
            "GetObject",
            true,
            json!({"bucketName": bucket, "Host": format!("{bucket}.s3.us-east-1.amazonaws.com"), "key": format!("reports/2024/05/{}.csv", rng.below(100_000))}),
            Value::Null,
        ),
        2 => (
            "s3.amazonaws.com",
            "PutObject",
            false,
            json!({"bucketName": bucket, "Host": format!("{bucket}.s3.us-east-1.amazonaws.com"), "key": format!("uploads/{}.json", rng.below(100_000))}),
            Value::Null,
        ),
        3 | 4 => (
            "ec2.amazonaws.com",
            "DescribeInstances",
            true,
            json!({"instancesSet": {}, "filterSet": {"items": [{"name": "tag:env", "valueSet": {"items": [{"value": "prod"}]}}]}}),
            Value::Null,
        ),
        5 => (
            "sts.amazonaws.com",
            "AssumeRole",
            false,
            json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/app{}", rng.below(50)), "roleSessionName": format!("s{}", rng.below(1000)), "durationSeconds": 3600}),
            json!({"credentials": {"accessKeyId": format!("ASIA{:016}", rng.below(1_000_000)), "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLETOKEN", "expiration": "May 1, 2024, 11:00:00 AM"}, "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:s1", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app1/s1")}}),
        ),
        6 => (
            "kms.amazonaws.com",
            "Decrypt",
            true,
            json!({"encryptionContext": {"aws:s3:arn": format!("arn:aws:s3:::{bucket}")}, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
            Value::Null,
        ),
        7 => (
            "iam.amazonaws.com",
            "ListRoles",
            true,
            Value::Null,
            Value::Null,
        ),
        8 => (
            "logs.amazonaws.com",
            "CreateLogStream",
            false,
            json!({"logGroupName": "/aws/lambda/fn", "logStreamName": format!("2024/05/01/[$LATEST]{:032x}", rng.next())}),
            Value::Null,
        ),
        _ => (
            "cloudtrail.amazonaws.com",
            if rng.below(50) == 0 {
                "StopLogging"
            } else {
                "LookupEvents"
            },
            false,
            json!({"name": "main-trail"}),
            Value::Null,
        ),
    };
    let mut e = json!({
        "eventVersion": "1.09", "userIdentity": identity(rng), "eventTime": time, "eventSource": source,
        "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": ip, "userAgent": agent,
        "requestParameters": params, "responseElements": response,
        "requestID": format!("{:016x}{:016x}", rng.next(), rng.next()), "eventID": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", rng.next() as u32, rng.below(65536), rng.below(4096), rng.below(4096), rng.below(1 << 48)),
        "readOnly": read_only, "eventType": "AwsApiCall", "managementEvent": source != "s3.amazonaws.com",
        "recipientAccountId": ACCOUNT, "eventCategory": if source == "s3.amazonaws.com" { "Data" } else { "Management" },
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": format!("{}.us-east-1.amazonaws.com", source.split('.').next().unwrap_or("s3"))}
    });
    if source == "s3.amazonaws.com" {
        e["resources"] = json!([{"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/x")}, {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]);
        e["additionalEventData"] = json!({"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader", "x-amz-id-2": "EXAMPLE", "bytesTransferredOut": rng.below(1_000_000)});
    }
    e
}

fn generate(dir: &Path, events: usize) -> (Vec<PathBuf>, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = 1_714_550_400_000i64;
    let folder = dir.join(format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/05/01"));
    std::fs::create_dir_all(&folder).expect("create folder");
    let mut files = Vec::new();
    let mut bytes = 0u64;
    let mut i = 0;
    let mut n = 0;
    while i < events {
        let count = EVENTS_PER_FILE.min(events - i);
        let records: Vec<Value> = (i..i + count).map(|k| event(&mut rng, k, t0)).collect();
        let text = serde_json::to_vec(&json!({"Records": records})).expect("json");
        bytes += text.len() as u64;
        let path = folder.join(format!(
            "{ACCOUNT}_CloudTrail_us-east-1_20240501T{:04}Z_{n:04}.json.gz",
            n % 2400
        ));
        let file = std::fs::File::create(&path).expect("create file");
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        gz.write_all(&text).expect("write");
        gz.finish().expect("finish");
        files.push(path);
        i += count;
        n += 1;
    }
    (files, bytes)
}

fn stage_wanted(name: &str) -> bool {
    match std::env::var("CT_BENCH_STAGES") {
        Ok(v) => v.split(',').any(|s| s.trim() == name),
        Err(_) => true,
    }
}

fn context(dir: &Path) -> DetectorContext {
    let mut list = String::new();
    for k in 0..10_000u32 {
        list.push_str(&format!(
            "{}.{}.{}.{}\n",
            20 + k % 180,
            (k / 7) % 256,
            (k * 13) % 256,
            1 + k % 250
        ));
    }
    let list_path = dir.join("threats.txt");
    std::fs::write(&list_path, list).expect("list");
    let settings = picket_aggregator::intel::IntelSettings::from_files(&[list_path], &[]);
    let snapshot =
        picket_aggregator::intel::sources::load_snapshot(&settings, 1).expect("snapshot");
    DetectorContext::with_fixed_intel(snapshot)
}

/// Each CloudTrail detector alone over `events` already in memory, then the whole pipeline
/// (detectors, correlation, engine) over the same events.
fn detector_breakdown(files: &[PathBuf], context: &DetectorContext, limit: usize) {
    let mut events = Vec::new();
    let mut reader = Reader::new();
    for f in files {
        if events.len() >= limit {
            break;
        }
        reader.read_file(f, &mut |e| events.push(Event::Api(Box::new(e))), &mut |p| {
            panic!("{p}")
        });
    }
    events.truncate(limit);
    let n = events.len() as f64;
    let config = DetectorsConfig::default();
    let mut out: Vec<Observation> = Vec::new();
    let mut sum = 0.0;
    let mut rows = Vec::new();
    for mut d in picket_aggregator::detectors::all(&config, context) {
        if !d.inputs().contains(&EventKind::Api) {
            continue;
        }
        let t = Stopwatch::start();
        let mut observed = 0usize;
        let mut names = SharedNames::default();
        for e in &events {
            d.observe(e, &EventFacts::of(e, &mut names), &mut out);
            observed += out.len();
            out.clear();
        }
        let (wall, cpu) = t.read();
        let ns = cpu.unwrap_or(wall) * 1e9 / n;
        sum += ns;
        rows.push((d.name(), ns, observed));
    }
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, ns, observed) in rows {
        println!("  detector {name:<28} {ns:>8.0} ns/event ({observed} observations)");
    }
    let mut pipeline = Pipeline::new(
        EngineConfig::default(),
        SuppressionRules::default(),
        Clock::EventTime,
        &config,
        context,
    );
    let t = Stopwatch::start();
    for e in &events {
        pipeline.feed(e);
        if pipeline.is_full() {
            drop(pipeline.drain());
        }
    }
    drop(pipeline.drain());
    let (wall, cpu) = t.read();
    let ns = cpu.unwrap_or(wall) * 1e9 / n;
    println!(
        "  detectors alone {sum:.0} ns/event; pipeline (detectors + correlation + engine) {ns:.0} ns/event over {} events in memory",
        events.len()
    );
}

/// This thread's time on a CPU so far (`/proc/thread-self/schedstat`), when the kernel tells.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Wall and CPU time from when it was started.
struct Stopwatch {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            cpu: cpu_time(),
            wall: Instant::now(),
        }
    }

    /// Seconds of wall time and of CPU time (when known) so far.
    fn read(&self) -> (f64, Option<f64>) {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = self
            .cpu
            .zip(cpu_time())
            .map(|(a, b)| b.saturating_sub(a).as_secs_f64());
        (wall, cpu)
    }
}

/// `", CPU 1.23 s, 456789 events/s by CPU"`, or nothing when CPU time is unknown.
fn cpu_text(cpu: Option<f64>, events: usize) -> String {
    cpu.map_or_else(String::new, |c| {
        format!(", CPU {c:.2} s, {:.0} events/s by CPU", events as f64 / c)
    })
}

/// mimalloc instead of glibc's allocator: CloudTrail normalising and the detectors make many
/// small short-lived allocations, where glibc's `malloc_consolidate` showed high in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let events: usize = std::env::var("CT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir =
        std::env::var_os("CT_BENCH_DIR").map_or_else(|| temp.path().to_owned(), PathBuf::from);
    let t = Instant::now();
    let logs = dir.join("AWSLogs");
    let existing = if logs.is_dir() {
        collect_files(&[logs]).0
    } else {
        Vec::new()
    };
    let files = if existing.is_empty() {
        let (files, json_bytes) = generate(&dir, events);
        println!(
            "generated {events} events in {} gzip files ({:.0} MB of JSON, {:.0} bytes/event) in {:.1} s",
            files.len(),
            json_bytes as f64 / 1e6,
            json_bytes as f64 / events as f64,
            t.elapsed().as_secs_f64()
        );
        files
    } else {
        println!("reusing {} gzip files in {}", existing.len(), dir.display());
        existing
    };
    // Warm the page cache so every stage reads from memory.
    for f in &files {
        let _ = std::fs::read(f).expect("read");
    }
    let mut reader = Reader::new();
    let mut events = 0usize;
    for f in &files {
        events += reader
            .read_file(f, &mut |_e| {}, &mut |p| panic!("{p}"))
            .events as usize;
    }
    let context = context(&dir);
    let rate = |secs: f64| events as f64 / secs;
    let mut floor = None;

    if stage_wanted("floor") {
        // Floor: gunzip + parse each file as a JSON value.
        let t = Stopwatch::start();
        let mut floor_events = 0usize;
        let mut buf = Vec::new();
        for f in &files {
            let raw = std::fs::read(f).expect("read");
            buf.clear();
            flate2::read::MultiGzDecoder::new(raw.as_slice())
                .read_to_end(&mut buf)
                .expect("gunzip");
            let v: Value = serde_json::from_slice(&buf).expect("json");
            floor_events += v["Records"].as_array().map_or(0, Vec::len);
        }
        let (secs, cpu) = t.read();
        assert_eq!(floor_events, events);
        println!(
            "floor (gunzip + serde_json::Value): {secs:.2} s, {:.0} events/s{}",
            rate(secs),
            cpu_text(cpu, events)
        );
        floor = Some((secs, cpu));
    }
    if stage_wanted("gunzip") {
        let t = Stopwatch::start();
        let mut buf = Vec::new();
        for f in &files {
            let raw = std::fs::read(f).expect("read");
            buf.clear();
            flate2::read::MultiGzDecoder::new(raw.as_slice())
                .read_to_end(&mut buf)
                .expect("gunzip");
        }
        let (secs, cpu) = t.read();
        println!(
            "stage gunzip alone: {secs:.2} s, {:.0} events/s{}",
            rate(secs),
            cpu_text(cpu, events)
        );
    }
    if stage_wanted("read") {
        let t = Stopwatch::start();
        let mut reader = Reader::new();
        let mut normalised = 0u64;
        for f in &files {
            normalised += reader
                .read_file(f, &mut |e| drop(std::hint::black_box(e)), &mut |p| {
                    panic!("{p}")
                })
                .events;
        }
        let (secs, cpu) = t.read();
        assert_eq!(normalised as usize, events);
        println!(
            "stage gunzip + read + normalise: {secs:.2} s, {:.0} events/s{}",
            rate(secs),
            cpu_text(cpu, events)
        );
    }
    if stage_wanted("full") {
        // Full path: find files, read, normalise, every detector, findings.
        let t = Stopwatch::start();
        let mut pipeline = Pipeline::new(
            EngineConfig::default(),
            SuppressionRules::default(),
            Clock::EventTime,
            &DetectorsConfig::default(),
            &context,
        );
        let (found, problems) = collect_files(&[dir.join("AWSLogs")]);
        assert!(problems.is_empty());
        let mut reader = Reader::new();
        let mut totals = ReadTotals::default();
        let mut findings = 0usize;
        for f in &found {
            let s = reader.read_file(
                f,
                &mut |e| {
                    pipeline.feed(&Event::Api(Box::new(e)));
                },
                &mut |p| panic!("{p}"),
            );
            totals.add(s);
            if pipeline.is_full() {
                findings += pipeline.drain().len();
            }
        }
        findings += pipeline.drain().len();
        let (secs, cpu) = t.read();
        assert_eq!(totals.events as usize, events);
        println!(
            "full (read, normalise, {} detectors, findings): {secs:.2} s, {:.0} events/s{}, {findings} findings",
            picket_aggregator::detectors::all(&DetectorsConfig::default(), &context).len(),
            rate(secs),
            cpu_text(cpu, events)
        );
        if let Some((floor, floor_cpu)) = floor {
            println!(
                "ratio full/floor time: {:.2}x (full is {:.2}x the floor's rate)",
                secs / floor,
                floor / secs
            );
            if let Some((c, fc)) = cpu.zip(floor_cpu) {
                println!(
                    "ratio full/floor CPU time: {:.2}x (full is {:.2}x the floor's rate)",
                    c / fc,
                    fc / c
                );
            }
        }
    }
    if stage_wanted("detectors") {
        println!(
            "per-detector cost (CloudTrail detectors only; {} time):",
            if cpu_time().is_some() { "CPU" } else { "wall" }
        );
        detector_breakdown(&files, &context, events.min(100_000));
    }
}
