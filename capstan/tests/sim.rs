//! `capstan sim dcs` runs the VRM simulator as a process a DCS client can log in to over verified
//! TLS, and stops cleanly on SIGTERM.

#![cfg(feature = "sim")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use capstan_dcs::{DcsClient, DcsConfig};

#[tokio::test]
async fn dcs_simulator_serves_a_client_and_stops_on_sigterm() {
    capstan_runtime::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["sim", "dcs", "--bind", "127.0.0.1:0", "--ca-file"])
        .arg(&ca_file)
        .env("CAPSTAN_SIM_PASSWORD", "Another-Passw0rd")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("url=")
        .unwrap_or_else(|| panic!("first line: {line:?}"));

    let mut config = DcsConfig::new(url.parse().unwrap(), "capstan", "Another-Passw0rd");
    config.ca_bundle_pem = Some(std::fs::read(&ca_file).unwrap());
    let client = DcsClient::new(config).unwrap();
    let template = client.find_template("ubuntu-2204-tmpl").await.unwrap();
    assert!(template.urn.contains(":vms:"), "{template:?}");

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
