//! Exact cloud-config and kubeadm YAML, expectations derived from CABPK's Go templates
//! (`pkg/cloudinit`) and kubeadm's marshalling; every document is also parsed back as YAML.

use capstan_kubeadm::api::*;
use capstan_kubeadm::pki::NodeFile;
use capstan_kubeadm::render::kubeadm::{cluster_configuration, init_configuration, join_configuration};
use capstan_kubeadm::render::{CloudInitInput, ClusterExtras, DocumentKind, KubeadmApi, RenderError, cloudinit};
use serde_json::Value;

const PLACEHOLDER: &str = "-   path: /run/cluster-api/placeholder\n    owner: root:root\n    permissions: '0640'\n    content: \"This placeholder file is used to create the /run/cluster-api sub directory in a way that is compatible with both Linux and Windows (mkdir -p /run/cluster-api does not work with Windows)\"\n";

fn extras() -> ClusterExtras {
    ClusterExtras {
        cluster_name: "c1".into(),
        control_plane_endpoint: Some("10.0.0.1:6443".into()),
        dns_domain: Some("cluster.local".into()),
        service_subnets: vec!["10.96.0.0/12".into()],
        pod_subnets: vec!["192.168.0.0/16".into()],
        kubernetes_version: "v1.28.3".into(),
    }
}

fn parse(doc: &str) -> Value {
    serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("not YAML: {e}\n{doc}"))
}

fn token_join() -> JoinConfiguration {
    let mut j = JoinConfiguration::default();
    j.discovery.bootstrap_token = BootstrapTokenDiscovery {
        token: "abcdef.0123456789abcdef".into(),
        api_server_endpoint: "10.0.0.1:6443".into(),
        ca_cert_hashes: Some(vec!["sha256:abc".into()]),
        unsafe_skip_ca_verification: None,
    };
    j
}

#[test]
fn version_selection() {
    assert_eq!(KubeadmApi::for_version("v1.22.0").unwrap(), KubeadmApi::V1Beta3);
    assert_eq!(KubeadmApi::for_version("v1.30.9").unwrap(), KubeadmApi::V1Beta3);
    assert_eq!(KubeadmApi::for_version("v1.31.0").unwrap(), KubeadmApi::V1Beta4);
    assert_eq!(KubeadmApi::for_version("1.34.1-rc.0").unwrap(), KubeadmApi::V1Beta4);
    let err = KubeadmApi::for_version("v1.21.14").unwrap_err();
    assert!(matches!(err, RenderError::UnsupportedVersion(_)));
    assert!(err.to_string().contains("v1.22 or later"), "{err}");
    assert!(matches!(
        KubeadmApi::for_version("latest"),
        Err(RenderError::InvalidVersion(_))
    ));
}

#[test]
fn cluster_configuration_v1beta3_minimal() {
    let yaml = cluster_configuration(
        KubeadmApi::V1Beta3,
        &ClusterConfiguration::default(),
        &extras(),
        &Timeouts::default(),
    );
    assert_eq!(
        yaml,
        "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta3\nclusterName: c1\ncontrolPlaneEndpoint: 10.0.0.1:6443\n\
         controllerManager: {}\ndns: {}\netcd: {}\nkind: ClusterConfiguration\nkubernetesVersion: v1.28.3\n\
         networking:\n  dnsDomain: cluster.local\n  podSubnet: 192.168.0.0/16\n  serviceSubnet: 10.96.0.0/12\n\
         scheduler: {}\n"
    );
    assert_eq!(parse(&yaml)["networking"]["podSubnet"], "192.168.0.0/16");
}

#[test]
fn cluster_configuration_v1beta4_full() {
    let cfg = ClusterConfiguration {
        control_plane_endpoint: "lb.example.com:443".into(),
        api_server: ApiServer {
            extra_args: Some(vec![Arg {
                name: "cloud-provider".into(),
                value: "external".into(),
            }]),
            cert_sans: Some(vec!["lb.example.com".into()]),
            ..Default::default()
        },
        etcd: Etcd {
            local: LocalEtcd {
                data_dir: "/var/lib/etcd".into(),
                ..Default::default()
            },
            external: None,
        },
        feature_gates: [("EtcdLearnerMode".to_string(), true)].into(),
        encryption_algorithm: Some(EncryptionAlgorithm::EcdsaP256),
        certificate_validity_period_days: Some(365),
        ..Default::default()
    };
    let mut e = extras();
    e.kubernetes_version = "v1.31.1".into();
    let timeouts = Timeouts {
        control_plane_component_health_check_seconds: Some(240),
        ..Default::default()
    };
    let yaml = cluster_configuration(KubeadmApi::V1Beta4, &cfg, &e, &timeouts);
    assert_eq!(
        yaml,
        "apiServer:\n  certSANs:\n  - lb.example.com\n  extraArgs:\n  - name: cloud-provider\n    value: external\n\
         apiVersion: kubeadm.k8s.io/v1beta4\ncertificateValidityPeriod: 8760h0m0s\nclusterName: c1\n\
         controlPlaneEndpoint: lb.example.com:443\ncontrollerManager: {}\ndns: {}\nencryptionAlgorithm: ECDSA-P256\n\
         etcd:\n  local:\n    dataDir: /var/lib/etcd\nfeatureGates:\n  EtcdLearnerMode: true\nkind: ClusterConfiguration\n\
         kubernetesVersion: v1.31.1\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 192.168.0.0/16\n  serviceSubnet: 10.96.0.0/12\n\
         proxy: {}\nscheduler: {}\n"
    );
    // v1beta3 has no timeouts section: the health check moves under apiServer, args become a map.
    let v3 = cluster_configuration(KubeadmApi::V1Beta3, &cfg, &extras(), &timeouts);
    let parsed = parse(&v3);
    assert_eq!(parsed["apiServer"]["timeoutForControlPlane"], "4m0s");
    assert_eq!(parsed["apiServer"]["extraArgs"]["cloud-provider"], "external");
    assert!(parsed.get("encryptionAlgorithm").is_none());
}

#[test]
fn init_configuration_nil_vs_empty_taints() {
    let mut init = InitConfiguration::default();
    assert_eq!(
        init_configuration(KubeadmApi::V1Beta3, &init),
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint: {}\nnodeRegistration:\n  taints: null\n"
    );
    init.node_registration.taints = Some(vec![]);
    init.node_registration.kubelet_extra_args = Some(vec![Arg {
        name: "v".into(),
        value: "4".into(),
    }]);
    init.local_api_endpoint.bind_port = Some(6443);
    init.timeouts.kubelet_health_check_seconds = Some(60);
    init.bootstrap_tokens = Some(vec![BootstrapToken {
        token: "abcdef.0123456789abcdef".into(),
        ttl_seconds: Some(900),
        ..Default::default()
    }]);
    assert_eq!(
        init_configuration(KubeadmApi::V1Beta4, &init),
        "apiVersion: kubeadm.k8s.io/v1beta4\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 15m0s\n\
         kind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: 6443\nnodeRegistration:\n  kubeletExtraArgs:\n  - name: v\n    value: \"4\"\n  taints: []\n\
         timeouts:\n  kubeletHealthCheck: 1m0s\n"
    );
}

#[test]
fn join_configurations() {
    let mut worker = token_join();
    worker.node_registration.taints = Some(vec![Taint {
        key: "node.cluster.x-k8s.io/uninitialized".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }]);
    assert_eq!(
        join_configuration(KubeadmApi::V1Beta4, &worker),
        "apiVersion: kubeadm.k8s.io/v1beta4\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes:\n    - sha256:abc\n    token: abcdef.0123456789abcdef\n\
         kind: JoinConfiguration\nnodeRegistration:\n  taints:\n  - effect: NoSchedule\n    key: node.cluster.x-k8s.io/uninitialized\n"
    );
    let mut cp = token_join();
    cp.control_plane = Some(JoinControlPlane::default());
    cp.timeouts.discovery_seconds = Some(300);
    assert_eq!(
        join_configuration(KubeadmApi::V1Beta3, &cp),
        "apiVersion: kubeadm.k8s.io/v1beta3\ncontrolPlane:\n  localAPIEndpoint: {}\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes:\n    - sha256:abc\n    token: abcdef.0123456789abcdef\n  timeout: 5m0s\n\
         kind: JoinConfiguration\nnodeRegistration:\n  taints: null\n"
    );
}

fn cert(path: &str, permissions: &'static str, content: &str) -> NodeFile {
    NodeFile {
        path: path.into(),
        permissions,
        content: content.into(),
    }
}

#[test]
fn init_document_exact() {
    let input = CloudInitInput {
        certificates: vec![
            cert("/etc/kubernetes/pki/ca.crt", "0640", "CA CERT\n"),
            cert("/etc/kubernetes/pki/ca.key", "0600", "CA KEY\n"),
        ],
        files: vec![File {
            path: "/etc/a".into(),
            owner: "root:root".into(),
            permissions: "0644".into(),
            encoding: Some(Encoding::Base64),
            append: Some(true),
            content: "aGVsbG8=".into(),
            ..Default::default()
        }],
        pre_kubeadm_commands: vec!["echo pre".into()],
        post_kubeadm_commands: vec![r#"echo "post""#.into()],
        cluster_configuration: "kind: ClusterConfiguration\n".into(),
        init_configuration: "kind: InitConfiguration\n".into(),
        ..Default::default()
    };
    let doc = cloudinit::render(DocumentKind::InitControlPlane, &input).unwrap();
    let expected = format!(
        "## template: jinja\n#cloud-config\n\nwrite_files:\n\
         -   path: /etc/kubernetes/pki/ca.crt\n    owner: root:root\n    permissions: '0640'\n    content: |\n      CA CERT\n      \n\
         -   path: /etc/kubernetes/pki/ca.key\n    owner: root:root\n    permissions: '0600'\n    content: |\n      CA KEY\n      \n\
         -   path: /etc/a\n    encoding: \"base64\"\n    owner: root:root\n    permissions: '0644'\n    append: true\n    content: |\n      aGVsbG8=\n\
         -   path: /run/kubeadm/kubeadm.yaml\n    owner: root:root\n    permissions: '0640'\n    content: |\n      ---\n      kind: ClusterConfiguration\n      \n      ---\n      kind: InitConfiguration\n      \n\
         {PLACEHOLDER}\
         runcmd:\n  - \"echo pre\"\n  - 'kubeadm init --config /run/kubeadm/kubeadm.yaml  && echo success > /run/cluster-api/bootstrap-success.complete'\n  - \"echo \\\"post\\\"\"\n"
    );
    assert_eq!(doc, expected);
    let parsed = parse(&doc);
    let paths: Vec<&str> = parsed["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki/ca.key",
            "/etc/a",
            "/run/kubeadm/kubeadm.yaml",
            "/run/cluster-api/placeholder"
        ]
    );
    assert_eq!(parsed["runcmd"][2], "echo \"post\"");
    assert_eq!(parsed["write_files"][2]["append"], true);
    // The kubeadm file holds two YAML documents.
    let kubeadm = parsed["write_files"][3]["content"].as_str().unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(kubeadm).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["kind"], "InitConfiguration");
}

#[test]
fn join_documents_exact() {
    let input = CloudInitInput {
        certificates: vec![cert("/etc/kubernetes/pki/ca.crt", "0640", "CA\n")],
        verbosity: Some(5),
        join_configuration: "kind: JoinConfiguration\n".into(),
        ..Default::default()
    };
    let worker = cloudinit::render(DocumentKind::JoinWorker, &input).unwrap();
    assert_eq!(
        worker,
        format!(
            "## template: jinja\n#cloud-config\n\nwrite_files:\n\
             -   path: /run/kubeadm/kubeadm-join-config.yaml\n    owner: root:root\n    permissions: '0640'\n    content: |\n      ---\n      kind: JoinConfiguration\n      \n\
             {PLACEHOLDER}\
             runcmd:\n  - kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml --v 5 && echo success > /run/cluster-api/bootstrap-success.complete\n"
        )
    );
    let cp = cloudinit::render(
        DocumentKind::JoinControlPlane,
        &CloudInitInput {
            verbosity: None,
            ..input.clone()
        },
    )
    .unwrap();
    assert_eq!(
        cp,
        format!(
            "## template: jinja\n#cloud-config\n\nwrite_files:\n\
             -   path: /etc/kubernetes/pki/ca.crt\n    owner: root:root\n    permissions: '0640'\n    content: |\n      CA\n      \n\
             -   path: /run/kubeadm/kubeadm-join-config.yaml\n    owner: root:root\n    permissions: '0640'\n    content: |\n      kind: JoinConfiguration\n      \n\
             {PLACEHOLDER}\
             runcmd:\n  - kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml  && echo success > /run/cluster-api/bootstrap-success.complete\n"
        )
    );
    for doc in [&worker, &cp] {
        let parsed = parse(doc);
        assert!(
            parsed["runcmd"][0]
                .as_str()
                .unwrap()
                .ends_with("> /run/cluster-api/bootstrap-success.complete")
        );
    }
}

fn sections_input() -> CloudInitInput {
    CloudInitInput {
        boot_commands: vec!["echo boot".into()],
        ntp: Ntp {
            servers: Some(vec!["0.pool.ntp.org".into()]),
            enabled: Some(true),
        },
        users: vec![User {
            name: "capstan".into(),
            passwd: "$6$hash".into(),
            gecos: "Capstan".into(),
            groups: "sudo".into(),
            home_dir: "/home/capstan".into(),
            inactive: Some(false),
            lock_password: Some(false),
            shell: "/bin/bash".into(),
            primary_group: "capstan".into(),
            sudo: "ALL=(ALL) NOPASSWD:ALL".into(),
            ssh_authorized_keys: Some(vec!["ssh-ed25519 AAAA".into()]),
            ..Default::default()
        }],
        disk_setup: DiskSetup {
            partitions: Some(vec![
                Partition {
                    device: "/dev/sdb".into(),
                    layout: Some(true),
                    overwrite: Some(false),
                    table_type: Some(TableType::Gpt),
                    disk_layout: None,
                },
                Partition {
                    device: "/dev/sdc".into(),
                    disk_layout: Some(vec![
                        PartitionSpec {
                            percentage: 50,
                            partition_type: "Linux".into(),
                        },
                        PartitionSpec {
                            percentage: 50,
                            partition_type: String::new(),
                        },
                    ]),
                    ..Default::default()
                },
            ]),
            filesystems: Some(vec![Filesystem {
                device: "/dev/sdb1".into(),
                filesystem: "ext4".into(),
                label: "data".into(),
                partition: "auto".into(),
                overwrite: Some(true),
                replace_fs: "ntfs".into(),
                extra_opts: Some(vec!["-E".into(), "lazy_itable_init=1".into()]),
            }]),
        },
        mounts: vec![vec!["LABEL=data".into(), "/var/lib/data".into()], vec!["swap".into()]],
        join_configuration: "kind: JoinConfiguration\n".into(),
        ..Default::default()
    }
}

#[test]
fn optional_sections_exact() {
    let doc = cloudinit::render(DocumentKind::JoinWorker, &sections_input()).unwrap();
    let tail = doc.split_once(PLACEHOLDER).unwrap().1;
    assert_eq!(
        tail,
        "bootcmd:\n  - \"echo boot\"\n\
         runcmd:\n  - kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml  && echo success > /run/cluster-api/bootstrap-success.complete\n\
         ntp:\n  enabled: true\n  servers:\n    - 0.pool.ntp.org\n\
         users:\n  - name: capstan\n    passwd: $6$hash\n    gecos: Capstan\n    groups: sudo\n    homedir: /home/capstan\n    inactive: false\n    lock_passwd: false\n    shell: /bin/bash\n    primary_group: capstan\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys:\n      - ssh-ed25519 AAAA\n\
         disk_setup:\n  /dev/sdb:\n    table_type: gpt\n    layout: true\n    overwrite: false\n  /dev/sdc:\n    layout:\n      - [50, 83]\n      - 50\n\
         fs_setup:\n  - label: data\n    filesystem: ext4\n    device: /dev/sdb1\n    partition: auto\n    overwrite: true\n    replace_fs: ntfs\n    extra_opts:\n      - -E\n      - lazy_itable_init=1\n\
         mounts:\n  - - LABEL=data\n    - /var/lib/data\n    \n  - - swap\n    \n"
    );
    let parsed = parse(&doc);
    assert_eq!(parsed["bootcmd"][0], "echo boot");
    assert_eq!(parsed["ntp"]["servers"][0], "0.pool.ntp.org");
    assert_eq!(parsed["users"][0]["lock_passwd"], false);
    assert_eq!(parsed["disk_setup"]["/dev/sdc"]["layout"][0][1], 83);
    assert_eq!(parsed["fs_setup"][0]["extra_opts"][1], "lazy_itable_init=1");
    assert_eq!(parsed["mounts"][0][1], "/var/lib/data");
}

#[test]
fn nil_and_empty_sections_render_the_same() {
    let base = CloudInitInput {
        join_configuration: "kind: JoinConfiguration\n".into(),
        ..Default::default()
    };
    let nil = cloudinit::render(DocumentKind::JoinWorker, &base).unwrap();
    let empty = cloudinit::render(
        DocumentKind::JoinWorker,
        &CloudInitInput {
            boot_commands: vec![],
            users: vec![],
            mounts: vec![],
            ntp: Ntp {
                servers: None,
                enabled: None,
            },
            disk_setup: DiskSetup {
                partitions: None,
                filesystems: None,
            },
            ..base.clone()
        },
    )
    .unwrap();
    assert_eq!(nil, empty);
    for absent in ["bootcmd:", "ntp:", "users:", "disk_setup:", "fs_setup:", "mounts:"] {
        assert!(!nil.contains(absent), "{absent} rendered for nil input");
    }
    // ntp with only `enabled` still prints an (empty) servers key, as upstream.
    let ntp_only = cloudinit::render(
        DocumentKind::JoinWorker,
        &CloudInitInput {
            ntp: Ntp {
                servers: None,
                enabled: Some(false),
            },
            ..base
        },
    )
    .unwrap();
    assert!(ntp_only.ends_with("ntp:\n  enabled: false\n  servers:\n"), "{ntp_only}");
}

#[test]
fn partition_type_codes() {
    for (name, code) in [
        ("Linux", "83"),
        ("LinuxSwap", "82"),
        ("LinuxRAID", "fd"),
        ("LVM", "8e"),
        ("Fat32", "0c"),
        ("NTFS", "07"),
        ("LinuxExtended", "85"),
        (
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        ),
    ] {
        assert_eq!(cloudinit::partition_type(name), code);
    }
}
