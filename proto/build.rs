//! Compiles `picket/v1/*.proto` with protox (pure Rust), so a fresh machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "picket/v1/ingest.proto",
        "picket/v1/records.proto",
        "picket/v1/admin.proto",
        "picket/v1/enroll.proto",
        "picket/v1/findings.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        // Records are also written as JSON lines (`picket-agent replay --out`), so every message
        // gets serde; enums stay their protobuf numbers in JSON, as prost stores them.
        .type_attribute(
            ".picket.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .message_attribute(".picket.v1", "#[serde(default)]")
        // A snapshot payload can run to hundreds of MiB and goes to every connected agent:
        // `Bytes` lets each session's frame share one buffer instead of copying it.
        .bytes(".picket.v1.IntelUpdate.payload")
        .compile_fds(fds)?;
    Ok(())
}
