//! `KubeadmConfig` and `KubeadmConfigTemplate`, `bootstrap.cluster.x-k8s.io/v1beta2`, schema-compatible
//! with upstream CABPK v1.14 (`api/bootstrap/kubeadm/v1beta2`). Only v1beta2 is served: the
//! upstream v1beta1 exists for conversion webhooks Capstan does not run.

mod kubeadm;

use capstan_api::core::{ObjectMetaTemplate, conditions_schema};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use kubeadm::*;

pub const GROUP: &str = "bootstrap.cluster.x-k8s.io";
pub const VERSION: &str = "v1beta2";

/// `true` when a value equals its type's default: Go's `omitzero` for value sub-structs.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// An `x-kubernetes-list-type: map` array schema with the given keys and size limits.
pub(crate) fn list_map_schema<T: JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
    keys: &[&str],
    min: u32,
    max: u32,
) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<T>>();
    let obj = schema.ensure_object();
    obj.insert("x-kubernetes-list-type".into(), "map".into());
    obj.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(keys));
    obj.insert("minItems".into(), min.into());
    obj.insert("maxItems".into(), max.into());
    schema
}

/// `metav1.Condition` list with the limits upstream's CRD carries (k8s-openapi's schema has none).
fn v1beta2_conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = conditions_schema(generator);
    let limits = serde_json::json!({
        "message": {"maxLength": 32768},
        "observedGeneration": {"minimum": 0},
        "reason": {"minLength": 1, "maxLength": 1024, "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
        "status": {"enum": ["True", "False", "Unknown"]},
        "type": {"maxLength": 316, "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"},
    });
    if let Some(props) = schema
        .get_mut("items")
        .and_then(|i| i.get_mut("properties"))
        .and_then(|p| p.as_object_mut())
    {
        for (field, extra) in limits.as_object().into_iter().flatten() {
            if let Some(prop) = props.get_mut(field).and_then(|p| p.as_object_mut()) {
                for (k, v) in extra.as_object().into_iter().flatten() {
                    prop.insert(k.clone(), v.clone());
                }
            }
        }
    }
    schema
}

/// The bootstrap configuration of one Machine (or MachinePool).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "KubeadmConfig",
    namespaced,
    status = "KubeadmConfigStatus",
    category = "cluster-api",
    printcolumn = r#"{"name":"Cluster","type":"string","description":"Cluster","jsonPath":".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"}"#,
    printcolumn = r#"{"name":"Paused","type":"string","description":"Reconciliation paused","priority":10,"jsonPath":".status.conditions[?(@.type==\"Paused\")].status"}"#,
    printcolumn = r#"{"name":"Data secret created","type":"string","description":"Boostrap secret is created","jsonPath":".status.initialization.dataSecretCreated"}"#,
    printcolumn = r#"{"name":"Age","type":"date","description":"Time duration since creation of KubeadmConfig","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct KubeadmConfigSpec {
    /// Used for init; kept on a control-plane join because it says whether etcd is external.
    #[serde(default, skip_serializing_if = "is_default")]
    pub cluster_configuration: ClusterConfiguration,
    #[serde(default, skip_serializing_if = "is_default")]
    pub init_configuration: InitConfiguration,
    #[serde(default, skip_serializing_if = "is_default")]
    pub join_configuration: JoinConfiguration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub files: Option<Vec<File>>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub disk_setup: DiskSetup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 100)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub mounts: Option<Vec<Vec<MountPoint>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000), inner(length(min = 1, max = 10240)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub boot_commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000), inner(length(min = 1, max = 10240)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub pre_kubeadm_commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000), inner(length(min = 1, max = 10240)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub post_kubeadm_commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub users: Option<Vec<User>>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub ntp: Ntp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<i32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub ignition: IgnitionSpec,
}

/// One entry of a `mounts` line (a cloud-init `mounts` field).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct MountPoint(#[schemars(length(min = 1, max = 512))] pub String);

/// The format of the bootstrap data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Format {
    #[default]
    #[serde(rename = "cloud-config")]
    CloudConfig,
    #[serde(rename = "ignition")]
    Ignition,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CloudConfig => "cloud-config",
            Format::Ignition => "ignition",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct File {
    #[schemars(length(min = 1, max = 512))]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 16))]
    pub permissions: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 10240))]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_from: Option<FileSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_format: Option<ContentFormat>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Encoding {
    #[serde(rename = "base64")]
    Base64,
    #[serde(rename = "gzip")]
    Gzip,
    #[serde(rename = "gzip+base64")]
    GzipBase64,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Gzip => "gzip",
            Encoding::GzipBase64 => "gzip+base64",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ContentFormat {
    Raw,
    Template,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct FileSource {
    pub secret: SecretFileSource,
}

/// A key of a Secret in the KubeadmConfig's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretFileSource {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub gecos: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub groups: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub home_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub shell: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub passwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwd_from: Option<PasswdSource>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub primary_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_password: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 256))]
    pub sudo: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 2048)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub ssh_authorized_keys: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct PasswdSource {
    pub secret: SecretFileSource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(extend("minProperties" = 1))]
pub struct Ntp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 512)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub servers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct DiskSetup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub partitions: Option<Vec<Partition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub filesystems: Option<Vec<Filesystem>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.layout),has(self.diskLayout)].filter(x,x==true).size() == 1",
    "message": "exactly one of the fields in [layout diskLayout] must be set"
}]))]
pub struct Partition {
    #[schemars(length(min = 1, max = 256))]
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub disk_layout: Option<Vec<PartitionSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<TableType>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionSpec {
    #[schemars(range(min = 1, max = 100))]
    pub percentage: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 36))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^(Linux|LinuxSwap|LinuxRAID|LVM|Fat32|NTFS|LinuxExtended|[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12})$')",
        "message": "partitionType must be one of Linux, LinuxSwap, LinuxRAID, LVM, Fat32, NTFS, LinuxExtended or a full GPT partition GUID"
    }]))]
    pub partition_type: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TableType {
    Mbr,
    Gpt,
}

impl TableType {
    pub fn as_str(self) -> &'static str {
        match self {
            TableType::Mbr => "mbr",
            TableType::Gpt => "gpt",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Filesystem {
    #[schemars(length(min = 1, max = 256))]
    pub device: String,
    #[schemars(length(min = 1, max = 128))]
    pub filesystem: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 512))]
    pub label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 128))]
    pub partition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    #[serde(default, rename = "replaceFS", skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 128))]
    pub replace_fs: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 256)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub extra_opts: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct IgnitionSpec {
    #[serde(default, skip_serializing_if = "is_default")]
    pub container_linux_config: ContainerLinuxConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct ContainerLinuxConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 32768))]
    pub additional_config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct KubeadmConfigStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "v1beta2_conditions_schema")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub data_secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Deprecated>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct Initialization {
    /// The contract field: the data secret exists and `dataSecretName` names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_secret_created: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Deprecated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1beta1: Option<V1Beta1Status>,
}

/// What v1beta1 clients still read, kept until upstream drops it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct V1Beta1Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<V1Beta1Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10240))]
    pub failure_message: Option<String>,
}

/// CAPI v1beta1 `Condition` (with `severity`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct V1Beta1Condition {
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 256))]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub severity: Option<String>,
    pub last_transition_time: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10240))]
    pub message: Option<String>,
}

/// Template from which MachineSets create KubeadmConfigs (one per Machine).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "KubeadmConfigTemplate",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"ClusterClass","type":"string","description":"Name of the ClusterClass owning this template","jsonPath":".metadata.ownerReferences[?(@.kind==\"ClusterClass\")].name"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","description":"Name of the Cluster owning this template","jsonPath":".metadata.ownerReferences[?(@.kind==\"Cluster\")].name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","description":"Time duration since creation of KubeadmConfigTemplate","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct KubeadmConfigTemplateSpec {
    pub template: KubeadmConfigTemplateResource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(extend("minProperties" = 1))]
pub struct KubeadmConfigTemplateResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minProperties" = 1))]
    pub metadata: Option<ObjectMetaTemplate>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub spec: KubeadmConfigSpec,
}

impl KubeadmConfig {
    pub fn data_secret_created(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.data_secret_created)
            .unwrap_or(false)
    }
}

/// Upstream omits an empty spec entirely (Go `omitzero`), e.g. for a worker that needs nothing but
/// defaults. kube-derive's type needs `spec` to deserialise, so instead of requiring it the CRD
/// defaults a missing spec to `{}` (and therefore cannot also demand `minProperties: 1` there).
fn default_empty_spec(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON;
    for version in &mut crd.spec.versions {
        let Some(root) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) else {
            continue;
        };
        if let Some(required) = root.required.as_mut() {
            required.retain(|r| r != "spec");
        }
        if root.required.as_ref().is_some_and(Vec::is_empty) {
            root.required = None;
        }
        if let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) {
            spec.min_properties = None;
            spec.default = Some(JSON(serde_json::json!({})));
        }
    }
    crd
}

/// The CRDs of this provider, with the CAPI contract label and the clusterctl provider label.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [default_empty_spec(KubeadmConfig::crd()), KubeadmConfigTemplate::crd()]
        .into_iter()
        .map(|crd| {
            capstan_api::crd::finalize(capstan_api::crd::with_provider_label(
                capstan_api::crd::with_contract_label(crd),
                "bootstrap-capstan-kubeadm",
            ))
        })
        .collect()
}
