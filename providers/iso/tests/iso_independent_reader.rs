//! The NoCloud and Ignition ISOs checked with independent readers: `isoinfo` (genisoimage) and `xorriso`.
//! Both must be installed (`apt-get install -y genisoimage xorriso`).

use std::path::Path;
use std::process::Command;

use capstan_iso::{BootstrapVolume, IgnitionVolume, IsoFile, NoCloudSeed, build_iso, static_network_config};

fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd} (apt-get install -y genisoimage xorriso): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn seed() -> NoCloudSeed {
    NoCloudSeed {
        instance_id: "9b2d6c1e-machine-uid".into(),
        hostname: "cp-1".into(),
        // Larger than one sector, with bytes that are not text, to catch extent/size mistakes.
        user_data: (0..5000u32).map(|i| (i * 7 % 251) as u8).collect(),
        network_config: Some(static_network_config(
            "10.0.0.11".parse().unwrap(),
            24,
            Some("10.0.0.1".parse().unwrap()),
            &["10.0.0.2".parse().unwrap()],
        )),
        provider_id: None,
    }
}

fn write_iso(dir: &Path, bytes: &[u8]) -> String {
    let path = dir.join("seed.iso");
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn isoinfo_reads_nocloud_seed() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(dir.path(), &seed.to_iso().unwrap());

    let info = String::from_utf8(run("isoinfo", &["-d", "-i", &iso])).unwrap();
    assert!(info.contains("Volume id: cidata"), "{info}");
    assert!(info.contains("Joliet with UCS level 3"), "{info}");

    let listing = String::from_utf8(run("isoinfo", &["-J", "-f", "-i", &iso])).unwrap();
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort();
    assert_eq!(names, ["/meta-data", "/network-config", "/user-data"]);

    for f in seed.files() {
        let got = run("isoinfo", &["-J", "-i", &iso, "-x", &format!("/{}", f.name)]);
        assert_eq!(got, f.data, "content of {} via isoinfo", f.name);
    }
    // The primary (non-Joliet) tree is valid too, with level-1 names.
    let plain = String::from_utf8(run("isoinfo", &["-f", "-i", &iso])).unwrap();
    assert!(plain.contains("/USER_DAT.;1"), "{plain}");
}

#[test]
fn xorriso_extracts_identical_bytes() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(dir.path(), &seed.to_iso().unwrap());
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    run("xorriso", &["-osirrox", "on", "-indev", &iso, "-extract", "/", out_s]);
    let mut found: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ["meta-data", "network-config", "user-data"]);
    for f in seed.files() {
        let got = std::fs::read(out.join(&f.name)).unwrap();
        assert_eq!(got, f.data, "content of {} via xorriso", f.name);
    }
}

#[test]
fn isoinfo_reads_multi_sector_directory() {
    let files: Vec<IsoFile> = (0..60)
        .map(|i| IsoFile::new(format!("file-with-a-long-name-{i:02}"), format!("content {i}\n")))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(dir.path(), &build_iso("many", &files).unwrap());
    let listing = String::from_utf8(run("isoinfo", &["-J", "-f", "-i", &iso])).unwrap();
    assert_eq!(listing.lines().count(), 60, "{listing}");
    for i in [0usize, 29, 59] {
        let got = run("isoinfo", &["-J", "-i", &iso, "-x", &format!("/{}", files[i].name)]);
        assert_eq!(got, files[i].data);
    }
}

/// The MicroOS Ignition volume: a subdirectory, read by both tools with the exact label
/// `ignition` (lowercase: MicroOS's `ignition-setup-user` looks for nothing else).
#[test]
fn independent_readers_find_the_ignition_config_in_its_subdirectory() {
    let config: Vec<u8> = (0..9000u32).map(|i| b"{}[]\"abc"[(i % 8) as usize]).collect();
    let mut files = IgnitionVolume::new(config.clone()).files();
    files.push(IsoFile::new(
        "combustion/script",
        b"#!/bin/bash\n# combustion: network\n".to_vec(),
    ));
    files.push(IsoFile::new("ignition/extra/deeper.txt", b"deep\n".to_vec()));
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(dir.path(), &build_iso("ignition", &files).unwrap());

    let info = String::from_utf8(run("isoinfo", &["-d", "-i", &iso])).unwrap();
    assert!(info.contains("Volume id: ignition"), "{info}");
    let listing = String::from_utf8(run("isoinfo", &["-J", "-f", "-i", &iso])).unwrap();
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "/combustion",
            "/combustion/script",
            "/ignition",
            "/ignition/config.ign",
            "/ignition/extra",
            "/ignition/extra/deeper.txt"
        ]
    );
    assert_eq!(
        run("isoinfo", &["-J", "-i", &iso, "-x", "/ignition/config.ign"]),
        config
    );
    let plain = String::from_utf8(run("isoinfo", &["-f", "-i", &iso])).unwrap();
    assert!(plain.contains("/IGNITION/CONFIG.IGN;1"), "{plain}");

    let out = dir.path().join("out");
    run(
        "xorriso",
        &["-osirrox", "on", "-indev", &iso, "-extract", "/", out.to_str().unwrap()],
    );
    for f in &files {
        assert_eq!(
            std::fs::read(out.join(&f.name)).unwrap(),
            f.data,
            "{} via xorriso",
            f.name
        );
    }
}
