//! Issue 10 §3: everything a simulated guest parses comes from user data (the NoCloud seed,
//! cloud-config, its jinja template, kubeadm's configuration): no input may panic the guest.
//! Mutations of realistic documents for a bounded time (see `capstan_e2e::fuzz`).

use capstan_e2e::fuzz::fuzz;
use capstan_guest::cloudinit::{InstanceData, parse, render};
use capstan_guest::kubeadm::config;
use capstan_guest::nocloud::{Seed, read_seed};

const CLOUD_CONFIG: &str = r#"## template: jinja
#cloud-config
hostname: '{{ ds.meta_data.local_hostname }}'
write_files:
- path: /etc/kubernetes/pki/ca.crt
  owner: root:root
  permissions: '0640'
  content: |
    -----BEGIN CERTIFICATE-----
    MIIB
    -----END CERTIFICATE-----
- path: /run/kubeadm/kubeadm.yaml
  encoding: gzip+base64
  content: H4sIAAAAAAAA/ypJLS4BBAAA//8=
- path: /etc/motd
  encoding: b64
  content: aGVsbG8=
  append: true
runcmd:
  - 'kubeadm init --config /run/kubeadm/kubeadm.yaml  && echo success > /run/cluster-api/bootstrap-success.complete'
  - [sh, -c, "echo {{ v1.instance_id }} > /tmp/id"]
{% if ds.meta_data.provider_id is defined %}
bootcmd: ["echo {{ ds.meta_data.provider_id }}"]
{% endif %}
users:
- name: capi
  sudo: ALL=(ALL) NOPASSWD:ALL
  ssh_authorized_keys: [ssh-ed25519 AAAA]
"#;

const KUBEADM: &str = r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
controlPlaneEndpoint: 10.0.0.10:6443
networking:
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.10:6443
    token: abcdef.0123456789abcdef
    caCertHashes: [sha256:0000]
nodeRegistration:
  name: worker-1
  kubeletExtraArgs:
  - name: provider-id
    value: dcs://1
  taints: []
"#;

fn instance() -> InstanceData {
    InstanceData::from_seed(&Seed {
        user_data: Vec::new(),
        meta_data: serde_json::json!({"instance-id": "i-1", "local-hostname": "cp-1", "provider-id": "dcs://1"}),
        network_config: None,
    })
}

const YAML_TOKENS: &[&[u8]] = &[
    b"{{",
    b"}}",
    b"{%",
    b"%}",
    b"\n- ",
    b": ",
    b"!!binary ",
    b"&a ",
    b"*a",
    b"[",
    b"]",
    b"{",
    b"}",
    b"'",
    b"\"",
    b"|\n",
    b">\n",
    b"\t",
    b"\n---\n",
    b"encoding: base64\n",
    b"~",
    b"<<: ",
];

#[test]
fn cloud_config_and_jinja_never_panic() {
    let inst = instance();
    let rendered = render(CLOUD_CONFIG.as_bytes(), &inst).unwrap();
    let report = fuzz(
        "cloud-init jinja + cloud-config",
        &[CLOUD_CONFIG.as_bytes(), rendered.as_bytes()],
        YAML_TOKENS,
        |bytes| {
            if let Ok(text) = render(bytes, &inst)
                && let Ok(cfg) = parse(&text)
            {
                for f in &cfg.write_files {
                    let _ = f.decode();
                    let _ = f.mode();
                }
            }
            let _ = parse(&String::from_utf8_lossy(bytes));
        },
    );
    assert!(report.executions > 100, "{report:?}");
}

#[test]
fn kubeadm_configuration_never_panics() {
    let report = fuzz("kubeadm configuration", &[KUBEADM.as_bytes()], YAML_TOKENS, |bytes| {
        let _ = config::parse(&String::from_utf8_lossy(bytes));
        let _ = config::endpoint(&String::from_utf8_lossy(bytes));
    });
    assert!(report.executions > 100, "{report:?}");
}

#[test]
fn nocloud_seed_never_panics() {
    use capstan_iso::BootstrapVolume;
    let iso = capstan_iso::NoCloudSeed {
        instance_id: "uid".into(),
        hostname: "cp-1".into(),
        user_data: CLOUD_CONFIG.as_bytes().to_vec(),
        network_config: None,
        provider_id: Some("dcs://x".into()),
    }
    .to_iso()
    .unwrap();
    let report = fuzz(
        "nocloud seed",
        &[&iso],
        &[b"instance-id: ", b"local-hostname: "],
        |bytes| {
            if let Ok(seed) = read_seed(bytes) {
                let _ = InstanceData::from_seed(&seed).jinja_variables();
            }
        },
    );
    assert!(report.executions > 100, "{report:?}");
}
