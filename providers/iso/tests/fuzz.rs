//! Issue 10 §3: the ISO reader takes bytes a VM's drive (or a cloud) hands over; no input may
//! panic it. Mutations of real NoCloud images, for a bounded time (see `capstan_e2e::fuzz`).

use capstan_e2e::fuzz::fuzz;
use capstan_iso::{BootstrapVolume, IgnitionVolume, NoCloudSeed, read_iso};

#[test]
fn read_iso_never_panics() {
    let seed = NoCloudSeed {
        instance_id: "uid".into(),
        hostname: "cp-1".into(),
        user_data: b"#cloud-config\nruncmd: [echo hi]\n".to_vec(),
        network_config: None,
        provider_id: Some("dcs://x".into()),
    }
    .to_iso()
    .unwrap();
    let ignition = IgnitionVolume::new(br#"{"ignition":{"version":"3.4.0"}}"#.to_vec())
        .to_iso()
        .unwrap();
    let report = fuzz(
        "read_iso",
        &[&seed, &ignition],
        &[b"CD001", b"\x01CD001\x01", &[0xff; 8]],
        |bytes| {
            let _ = read_iso(bytes);
        },
    );
    assert!(report.executions > 100, "{report:?}");
}
