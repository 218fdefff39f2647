//! The configs providers wrap around an Ignition bootstrap document pass the real
//! `ignition-validate`, and so do the documents inside them.

use capstan_e2e::ignition::assert_valid;
use capstan_lifecycle::ignition::{ProviderFile, replace_stub, with_provider_files};

const DOC: &[u8] = br#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/kubeadm.yml","mode":384,"overwrite":true,"contents":{"source":"data:,kind%3A%20JoinConfiguration%0A"}}]}}"#;

#[test]
fn wrappers_are_valid_ignition() {
    assert_valid(DOC);
    let files = [
        ProviderFile {
            path: "/etc/hostname".into(),
            mode: 0o644,
            contents: b"cp-1\n".to_vec(),
        },
        ProviderFile {
            path: "/etc/NetworkManager/system-connections/capstan-nic0.nmconnection".into(),
            mode: 0o600,
            contents: b"[connection]\nid=capstan-nic0\ntype=ethernet\n".to_vec(),
        },
    ];
    assert_valid(&with_provider_files(DOC, &files).unwrap());
    assert_valid(&replace_stub(DOC).unwrap());
    let v30 = br#"{"ignition":{"version":"3.0.0"}}"#;
    assert_valid(&replace_stub(v30).unwrap());
    assert_valid(&with_provider_files(v30, &files).unwrap());
}

#[test]
fn the_oracle_refuses_a_broken_document() {
    // A relative path: if the validator accepted this, the oracle would prove nothing.
    let bad = br#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"etc/x"}]}}"#;
    assert!(capstan_e2e::ignition::validate(bad).is_err());
}
