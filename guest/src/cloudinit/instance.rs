//! Instance data: what cloud-init writes to `/run/cloud-init/instance-data-sensitive.json` for
//! a NoCloud boot and hands to jinja templates (after `convert_jinja_instance_data`).

use serde_json::{Map, Value, json};

use crate::nocloud::Seed;

/// cloud-init's text for the `ds` key.
const DS_DOC: &str = "EXPERIMENTAL: The structure and format of content scoped under the 'ds' key may change in subsequent releases of cloud-init.";

/// The guest image the simulator stands for. cloud-init reads these from the running system;
/// they only matter to templates that branch on the distribution.
const DISTRO: (&str, &str, &str) = ("ubuntu", "24.04", "noble");
const KERNEL_RELEASE: &str = "6.8.0-31-generic";
const MACHINE: &str = "x86_64";
const PYTHON_VERSION: &str = "3.12.3";
const SYSTEM_PLATFORM: &str = "Linux-6.8.0-31-generic-x86_64-with-glibc2.39";
/// The seed is a CD-ROM; cloud-init names the device it mounted.
const SUBPLATFORM: &str = "config-disk (/dev/sr0)";
/// What `util.get_hostname()` returns on a fresh image when meta-data has no local-hostname.
const FALLBACK_HOSTNAME: &str = "localhost";
/// cloud-init's `METADATA_UNKNOWN`.
const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceData {
    /// The instance-data document (`ds`, `v1`, `sys_info`, ...) before jinja aliasing. Public
    /// so a test can stand for a different image (e.g. change `v1.distro`).
    pub json: Value,
}

impl InstanceData {
    pub fn from_seed(seed: &Seed) -> Self {
        let mut meta = seed.meta_data.as_object().cloned().unwrap_or_default();
        // DataSourceNoCloud merges these defaults under whatever the seed says.
        meta.entry("instance-id").or_insert_with(|| json!("nocloud"));
        meta.entry("dsmode").or_insert_with(|| json!("net"));

        let instance_id = python_str(&meta["instance-id"]);
        let local_hostname = local_hostname(&meta);
        let availability_zone = availability_zone(&meta);
        let region = meta.get("region").cloned().unwrap_or(Value::Null);
        let cloud_name = match meta.get("cloud-name") {
            Some(Value::String(s)) if !s.is_empty() => s.to_lowercase(),
            _ => UNKNOWN.to_string(),
        };
        let cloud_id = canonical_cloud_id(&cloud_name, region.as_str(), "nocloud");
        let (distro, version, release) = DISTRO;
        let v1 = json!({
            "_beta_keys": ["subplatform"],
            "availability-zone": availability_zone,
            "availability_zone": availability_zone,
            "cloud_id": cloud_id,
            "cloud-name": cloud_name,
            "cloud_name": cloud_name,
            "distro": distro,
            "distro_release": release,
            "distro_version": version,
            "instance-id": instance_id,
            "instance_id": instance_id,
            "kernel_release": KERNEL_RELEASE,
            "local-hostname": local_hostname,
            "local_hostname": local_hostname,
            "machine": MACHINE,
            "platform": "nocloud",
            "public_ssh_keys": public_ssh_keys(meta.get("public-keys")),
            "python_version": PYTHON_VERSION,
            "region": region,
            "subplatform": SUBPLATFORM,
            "system_platform": SYSTEM_PLATFORM,
            "variant": distro,
        });
        let json = json!({
            "base64_encoded_keys": [],
            "ds": {"_doc": DS_DOC, "meta_data": Value::Object(meta)},
            "sys_info": {
                "dist": [distro, version, release],
                "platform": SYSTEM_PLATFORM,
                "python": PYTHON_VERSION,
                "uname": ["Linux", "localhost", KERNEL_RELEASE, "#31-Ubuntu SMP", MACHINE],
                "variant": distro,
            },
            "v1": v1,
        });
        InstanceData { json }
    }

    pub fn instance_id(&self) -> &str {
        self.json["v1"]["instance_id"].as_str().unwrap_or_default()
    }

    /// The short hostname cloud-init derives (first label of `local-hostname`).
    pub fn local_hostname(&self) -> &str {
        self.json["v1"]["local_hostname"].as_str().unwrap_or_default()
    }

    /// `ds.meta_data`, with NoCloud's defaults merged in.
    pub fn meta_data(&self) -> Option<&Map<String, Value>> {
        self.json["ds"]["meta_data"].as_object()
    }

    /// The variables a template sees: every key containing `-` or `.` also under an `_` alias
    /// (at every level), and the `v1` keys copied to the top level.
    pub fn jinja_variables(&self) -> Map<String, Value> {
        match &self.json {
            Value::Object(m) => convert_jinja_instance_data(m),
            _ => Map::new(),
        }
    }
}

/// `convert_jinja_instance_data(..., include_key_aliases=True)`: keys in sorted order, so a
/// later key (or alias) overwrites an earlier one of the same name exactly as in cloud-init.
fn convert_jinja_instance_data(data: &Map<String, Value>) -> Map<String, Value> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    let mut result = Map::new();
    for key in keys {
        let value = match &data[key.as_str()] {
            Value::Object(m) => {
                let converted = convert_jinja_instance_data(m);
                if is_versioned_key(key) {
                    for (k, v) in &converted {
                        result.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(converted)
            }
            other => other.clone(),
        };
        result.insert(key.clone(), value.clone());
        let alias = key.replace(['-', '.'], "_");
        if alias != *key {
            result.insert(alias, value);
        }
    }
    result
}

/// `re.match(r"v\d+$", key)`.
fn is_versioned_key(key: &str) -> bool {
    key.strip_prefix('v')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// `DataSource.get_hostname()`: the first label of local-hostname, `ip-a-b-c-d` for an IPv4
/// address, and the system hostname when meta-data has none.
fn local_hostname(meta: &Map<String, Value>) -> String {
    let lhost = match meta.get("local-hostname") {
        Some(v) if python_truthy(v) => python_str(v),
        _ => return FALLBACK_HOSTNAME.to_string(),
    };
    if lhost.parse::<std::net::Ipv4Addr>().is_ok() {
        return format!("ip-{}", lhost.replace('.', "-"));
    }
    lhost.split('.').next().unwrap_or_default().to_string()
}

fn availability_zone(meta: &Map<String, Value>) -> Value {
    let top = meta
        .get("availability-zone")
        .or_else(|| meta.get("availability_zone"))
        .filter(|v| python_truthy(v));
    if let Some(v) = top {
        return v.clone();
    }
    meta.get("placement")
        .and_then(|p| p.get("availability-zone"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// `canonical_cloud_id` (with the region-prefix table cut down to the clouds that have one).
fn canonical_cloud_id(cloud_name: &str, region: Option<&str>, platform: &str) -> String {
    let named = |fallback: &str| {
        if cloud_name != UNKNOWN {
            cloud_name.to_string()
        } else {
            fallback.to_string()
        }
    };
    let Some(region) = region.filter(|r| !r.is_empty() && *r != UNKNOWN) else {
        return named(platform);
    };
    for (prefix, id, cloud) in [
        ("cn-", "aws-china", "aws"),
        ("us-gov-", "aws-gov", "aws"),
        ("china", "azure-china", "azure"),
    ] {
        if region.starts_with(prefix) && cloud_name == cloud {
            return id.to_string();
        }
    }
    named(platform)
}

/// `normalize_pubkey_data`.
fn public_ssh_keys(data: Option<&Value>) -> Value {
    let keys: Vec<Value> = match data {
        Some(Value::String(s)) => s.lines().map(|l| json!(l)).collect(),
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Object(m)) => m
            .values()
            .flat_map(|v| match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            })
            .filter(|k| !k.is_empty())
            .map(Value::String)
            .collect(),
        _ => Vec::new(),
    };
    Value::Array(keys)
}

/// Python's `str()` of a YAML scalar, for values cloud-init stringifies (instance-id).
pub(crate) fn python_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn python_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(meta: Value) -> Seed {
        Seed {
            user_data: Vec::new(),
            meta_data: meta,
            network_config: None,
        }
    }

    #[test]
    fn aliases_and_top_level_copies() {
        let data = InstanceData::from_seed(&seed(
            json!({"instance-id": "vm-1", "local-hostname": "cp-1.example.com"}),
        ));
        assert_eq!(data.instance_id(), "vm-1");
        assert_eq!(data.local_hostname(), "cp-1");
        let vars = data.jinja_variables();
        assert_eq!(vars["ds"]["meta_data"]["local_hostname"], "cp-1.example.com");
        assert_eq!(vars["ds"]["meta_data"]["local-hostname"], "cp-1.example.com");
        assert_eq!(vars["local_hostname"], "cp-1");
        assert_eq!(vars["v1"]["cloud_id"], "nocloud");
        assert_eq!(vars["platform"], "nocloud");
        assert_eq!(vars["cloud_name"], "unknown");
        assert_eq!(vars["region"], Value::Null);
        assert_eq!(vars["ds"]["meta_data"]["dsmode"], "net");
    }

    #[test]
    fn defaults_and_ip_hostnames() {
        let data = InstanceData::from_seed(&seed(json!({"local-hostname": "10.1.2.3", "cloud-name": "MyCloud"})));
        assert_eq!(data.instance_id(), "nocloud");
        assert_eq!(data.local_hostname(), "ip-10-1-2-3");
        assert_eq!(data.jinja_variables()["cloud_id"], "mycloud");
        assert_eq!(InstanceData::from_seed(&seed(json!({}))).local_hostname(), "localhost");
    }
}
