//! Every generated certificate and key parsed back and checked against what upstream generates.

use capstan_kubeadm::api::{ClusterConfiguration, EncryptionAlgorithm, ExternalEtcd};
use capstan_kubeadm::kubeconfig::{admin_kubeconfig, kubeconfig_secret};
use capstan_kubeadm::pki::{self, Certificates, Purpose};
use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509ExtendedKeyUsage, X509KeyUsage, X509StoreContext};

const ALGORITHMS: [EncryptionAlgorithm; 5] = [
    EncryptionAlgorithm::Rsa2048,
    EncryptionAlgorithm::Rsa3072,
    EncryptionAlgorithm::Rsa4096,
    EncryptionAlgorithm::EcdsaP256,
    EncryptionAlgorithm::EcdsaP384,
];

fn assert_key_algorithm(key: &PKey<impl openssl::pkey::HasPublic>, alg: EncryptionAlgorithm) {
    match alg {
        EncryptionAlgorithm::Rsa2048 | EncryptionAlgorithm::Rsa3072 | EncryptionAlgorithm::Rsa4096 => {
            assert_eq!(key.id(), Id::RSA);
            let bits = match alg {
                EncryptionAlgorithm::Rsa2048 => 2048,
                EncryptionAlgorithm::Rsa3072 => 3072,
                _ => 4096,
            };
            assert_eq!(key.bits(), bits);
        }
        EncryptionAlgorithm::EcdsaP256 | EncryptionAlgorithm::EcdsaP384 => {
            assert_eq!(key.id(), Id::EC);
            let curve = key.ec_key().unwrap().group().curve_name().unwrap();
            let want = if alg == EncryptionAlgorithm::EcdsaP256 {
                Nid::X9_62_PRIME256V1
            } else {
                Nid::SECP384R1
            };
            assert_eq!(curve, want);
        }
    }
}

fn pem_kind(pem: &[u8]) -> String {
    let text = std::str::from_utf8(pem).unwrap();
    text.lines().next().unwrap().to_string()
}

/// Whole days from now until `t`, tolerating the seconds the test itself takes.
fn days_until(t: &openssl::asn1::Asn1TimeRef) -> i64 {
    let d = Asn1Time::days_from_now(0).unwrap().diff(t).unwrap();
    let secs = i64::from(d.days) * 86_400 + i64::from(d.secs);
    (secs + 60) / 86_400
}

#[test]
fn ca_certificates_match_upstream_template() {
    for alg in ALGORITHMS {
        let kp = pki::new_ca(alg, 3650).unwrap();
        let cert = X509::from_pem(&kp.cert).unwrap();
        assert_eq!(pem_kind(&kp.cert), "-----BEGIN CERTIFICATE-----");
        let cn = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next().unwrap();
        assert_eq!(cn.data().to_string().unwrap(), "kubernetes");
        assert_eq!(cert.subject_name().entries().count(), 1, "CN only");
        assert_eq!(
            cert.serial_number().to_bn().unwrap().to_dec_str().unwrap().to_string(),
            "0"
        );
        // Self-signed.
        assert!(cert.verify(&cert.public_key().unwrap()).unwrap());
        assert_eq!(cert.pathlen(), Some(0), "CA with MaxPathLenZero");
        let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert_eq!(
            cert.key_usage().unwrap(),
            X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::KEY_ENCIPHERMENT | X509KeyUsage::KEY_CERT_SIGN
        );
        assert!(cert.subject_key_id().is_some());
        // NotBefore five minutes in the past, NotAfter 3650 days ahead.
        let back = Asn1Time::days_from_now(0).unwrap().diff(cert.not_before()).unwrap();
        assert!(back.days == 0 && (-330..=-290).contains(&back.secs), "{back:?}");
        assert_eq!(days_until(cert.not_after()), 3650);
        assert_key_algorithm(&cert.public_key().unwrap(), alg);
        let key = pki::parse_private_key(&kp.key).unwrap();
        assert!(key.public_eq(&cert.public_key().unwrap()));
        let want_pem = if key.id() == Id::EC {
            "-----BEGIN EC PRIVATE KEY-----"
        } else {
            "-----BEGIN RSA PRIVATE KEY-----"
        };
        assert_eq!(pem_kind(&kp.key), want_pem);
    }
}

#[test]
fn ca_validity_follows_configuration() {
    let mut cfg = ClusterConfiguration::default();
    assert_eq!(pki::ca_validity_days(&cfg), 3650);
    cfg.ca_certificate_validity_period_days = Some(42);
    assert_eq!(pki::ca_validity_days(&cfg), 42);
    let kp = pki::new_ca(EncryptionAlgorithm::Rsa2048, 42).unwrap();
    assert_eq!(days_until(X509::from_pem(&kp.cert).unwrap().not_after()), 42);
}

#[test]
fn service_account_public_key_matches_private() {
    for alg in ALGORITHMS {
        let kp = pki::new_service_account_key_pair(alg).unwrap();
        assert_eq!(pem_kind(&kp.cert), "-----BEGIN PUBLIC KEY-----");
        let public = PKey::public_key_from_pem(&kp.cert).unwrap();
        let private = pki::parse_private_key(&kp.key).unwrap();
        assert!(public.public_eq(&private));
        assert_key_algorithm(&public, alg);
    }
}

#[test]
fn initial_control_plane_set_secrets_and_files() {
    let mut certs = Certificates::for_initial_control_plane(&ClusterConfiguration::default());
    let order: Vec<_> = certs.0.iter().map(|c| c.purpose).collect();
    assert_eq!(
        order,
        [
            Purpose::ClusterCa,
            Purpose::EtcdCa,
            Purpose::FrontProxyCa,
            Purpose::ServiceAccount
        ]
    );
    certs.generate_missing(EncryptionAlgorithm::Rsa2048, 3650).unwrap();
    assert!(certs.0.iter().all(|c| c.generated));
    certs.ensure_all_exist("c1").unwrap();
    let files: Vec<_> = certs.files().into_iter().map(|f| (f.path, f.permissions)).collect();
    assert_eq!(
        files,
        [
            ("/etc/kubernetes/pki/ca.crt", "0640"),
            ("/etc/kubernetes/pki/ca.key", "0600"),
            ("/etc/kubernetes/pki/etcd/ca.crt", "0640"),
            ("/etc/kubernetes/pki/etcd/ca.key", "0600"),
            ("/etc/kubernetes/pki/front-proxy-ca.crt", "0640"),
            ("/etc/kubernetes/pki/front-proxy-ca.key", "0600"),
            ("/etc/kubernetes/pki/sa.pub", "0640"),
            ("/etc/kubernetes/pki/sa.key", "0600"),
        ]
        .map(|(p, m)| (p.to_string(), m))
    );
    let names: Vec<_> = certs
        .0
        .iter()
        .map(|c| c.to_secret("c1", "ns", None).unwrap())
        .map(|s| {
            assert_eq!(s.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
            assert_eq!(
                s.metadata.labels.as_ref().unwrap()["cluster.x-k8s.io/cluster-name"],
                "c1"
            );
            let data = s.data.unwrap();
            assert_eq!(data.keys().collect::<Vec<_>>(), ["tls.crt", "tls.key"]);
            s.metadata.name.unwrap()
        })
        .collect();
    assert_eq!(names, ["c1-ca", "c1-etcd", "c1-proxy", "c1-sa"]);

    // Existing secrets are read back and never regenerated.
    let secret = certs
        .get(Purpose::ClusterCa)
        .unwrap()
        .to_secret("c1", "ns", None)
        .unwrap();
    let mut again = Certificates::for_initial_control_plane(&ClusterConfiguration::default());
    again.get_mut(Purpose::ClusterCa).unwrap().load_secret(&secret).unwrap();
    again.generate_missing(EncryptionAlgorithm::EcdsaP256, 10).unwrap();
    let ca = again.get(Purpose::ClusterCa).unwrap();
    assert!(!ca.generated);
    assert_eq!(ca.key_pair, certs.get(Purpose::ClusterCa).unwrap().key_pair);
    assert!(again.get(Purpose::EtcdCa).unwrap().generated);
}

#[test]
fn external_etcd_and_worker_sets() {
    let mut cfg = ClusterConfiguration {
        certificates_dir: "/pki".into(),
        ..Default::default()
    };
    cfg.etcd.external = Some(ExternalEtcd {
        endpoints: vec!["https://etcd:2379".into()],
        ca_file: "/ext/ca.crt".into(),
        cert_file: "/ext/client.crt".into(),
        key_file: "/ext/client.key".into(),
    });
    let mut certs = Certificates::for_initial_control_plane(&cfg);
    certs.generate_missing(EncryptionAlgorithm::Rsa2048, 1).unwrap();
    // The user's etcd certificates are never generated.
    assert!(certs.get(Purpose::EtcdCa).unwrap().key_pair.is_none());
    assert!(certs.get(Purpose::ApiServerEtcdClient).unwrap().key_pair.is_none());
    assert_eq!(certs.get(Purpose::ClusterCa).unwrap().cert_file, "/pki/ca.crt");
    let err = certs.ensure_all_exist("c1").unwrap_err().to_string();
    assert!(err.contains("c1-etcd"), "{err}");
    // An external etcd CA may come without a key.
    let mut secret = certs
        .get(Purpose::ClusterCa)
        .unwrap()
        .to_secret("c1", "ns", None)
        .unwrap();
    secret.data.as_mut().unwrap().remove("tls.key");
    certs.get_mut(Purpose::EtcdCa).unwrap().load_secret(&secret).unwrap();
    let mut internal = Certificates::for_initial_control_plane(&ClusterConfiguration::default());
    assert!(matches!(
        internal.get_mut(Purpose::ClusterCa).unwrap().load_secret(&secret),
        Err(pki::PkiError::MissingKey(_))
    ));

    let worker = Certificates::for_worker("");
    assert_eq!(worker.0.len(), 1);
    assert_eq!(worker.0[0].cert_file, "/etc/kubernetes/pki/ca.crt");
    assert_eq!(Certificates::for_worker("/x/ca.crt").0[0].cert_file, "/x/ca.crt");
}

#[test]
fn ca_cert_hash_is_sha256_of_spki() {
    let kp = pki::new_ca(EncryptionAlgorithm::Rsa2048, 1).unwrap();
    let hashes = pki::ca_cert_hashes(&kp.cert).unwrap();
    assert_eq!(hashes.len(), 1);
    // Cross-check with the openssl CLI: the SPKI DER of the certificate, hashed.
    let dir = tempfile_dir();
    let path = dir.join("ca.crt");
    std::fs::write(&path, &kp.cert).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex",
            path.display()
        ))
        .output()
        .unwrap();
    let cli = String::from_utf8(out.stdout).unwrap();
    let cli_hex = cli.trim().rsplit(' ').next().unwrap();
    assert_eq!(hashes[0], format!("sha256:{cli_hex}"));
    let mut bundle = kp.cert.clone();
    bundle.extend_from_slice(&pki::new_ca(EncryptionAlgorithm::EcdsaP256, 1).unwrap().cert);
    assert_eq!(pki::ca_cert_hashes(&bundle).unwrap().len(), 2);
    assert!(pki::ca_cert_hashes(b"").is_err());
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("capstan-kubeadm-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn admin_kubeconfig_as_upstream() {
    for alg in [EncryptionAlgorithm::Rsa2048, EncryptionAlgorithm::EcdsaP384] {
        let ca = pki::new_ca(alg, 3650).unwrap();
        let text = admin_kubeconfig("c1", "https://10.0.0.1:6443", &ca.cert, &ca.key).unwrap();
        let kc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(kc["current-context"], "c1-admin@c1");
        assert_eq!(kc["clusters"][0]["name"], "c1");
        assert_eq!(kc["clusters"][0]["cluster"]["server"], "https://10.0.0.1:6443");
        assert_eq!(kc["contexts"][0]["name"], "c1-admin@c1");
        assert_eq!(kc["contexts"][0]["context"]["cluster"], "c1");
        assert_eq!(kc["contexts"][0]["context"]["user"], "c1-admin");
        assert_eq!(kc["users"][0]["name"], "c1-admin");
        let b64 = |v: &serde_json::Value| openssl::base64::decode_block(v.as_str().unwrap()).unwrap();
        assert_eq!(
            b64(&kc["clusters"][0]["cluster"]["certificate-authority-data"]),
            ca.cert
        );
        let cert = X509::from_pem(&b64(&kc["users"][0]["user"]["client-certificate-data"])).unwrap();
        let key = pki::parse_private_key(&b64(&kc["users"][0]["user"]["client-key-data"])).unwrap();
        assert!(key.public_eq(&cert.public_key().unwrap()));
        let entry = |nid| {
            cert.subject_name()
                .entries_by_nid(nid)
                .map(|e| e.data().to_string().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(entry(Nid::COMMONNAME), ["kubernetes-admin"]);
        assert_eq!(entry(Nid::ORGANIZATIONNAME), ["system:masters"]);
        assert_eq!(cert.extended_key_usage(), Some(X509ExtendedKeyUsage::SSL_CLIENT));
        assert_eq!(cert.pathlen(), None, "not a CA");
        assert_eq!(days_until(cert.not_after()), 365);
        // Chains to the cluster CA.
        let ca_cert = X509::from_pem(&ca.cert).unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca_cert).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        let chain = Stack::new().unwrap();
        assert!(ctx.init(&store, &cert, &chain, |c| c.verify_cert()).unwrap());

        let secret = kubeconfig_secret("c1", "ns", &text, None);
        assert_eq!(secret.metadata.name.as_deref(), Some("c1-kubeconfig"));
        assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
        assert_eq!(secret.metadata.labels.unwrap()["cluster.x-k8s.io/cluster-name"], "c1");
        assert_eq!(secret.data.unwrap()["value"].0, text.as_bytes());
    }
}
