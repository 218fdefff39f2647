//! The oracle for every Ignition document a test produces: the real `ignition-validate`
//! (coreos/ignition's own validator, built by `hack/testenv.sh` into `$CAPSTAN_IGNITION_VALIDATE`).
//! A document passes only when the validator exits 0 and prints nothing: its warnings (an
//! unused key, a unit without `[Install]`) are bugs in a generated document too.

use std::process::Command;

/// Panics with the validator's report unless `doc` is a valid Ignition config.
pub fn assert_valid(doc: &[u8]) {
    if let Err(report) = validate(doc) {
        panic!(
            "ignition-validate refused the document: {report}\n{}",
            String::from_utf8_lossy(doc)
        );
    }
}

/// Runs the validator; `Err` carries what it printed.
pub fn validate(doc: &[u8]) -> Result<(), String> {
    let bin = std::env::var_os("CAPSTAN_IGNITION_VALIDATE").unwrap_or_else(|| {
        panic!("CAPSTAN_IGNITION_VALIDATE is not set: run `eval \"$(hack/testenv.sh)\"` (CI always does)")
    });
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("config.ign");
    std::fs::write(&path, doc).expect("writing the document");
    let out = Command::new(&bin)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.to_string_lossy()));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && printed.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("exit {:?}: {}", out.status.code(), printed.trim()))
    }
}
