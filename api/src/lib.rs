//! Types and contract helpers shared by every Capstan component.
//!
//! - [`core`]: the Cluster API core kinds (`cluster.x-k8s.io/v1beta2`) as Capstan reads and writes
//!   them. Every struct keeps the fields Capstan does not model in an `unknown` map, so reading an
//!   object and writing it back never drops what another controller (or a newer CAPI) put there.
//! - [`contract`]: well-known labels and annotations, pause and managed-by checks, CRD names.
//! - [`conditions`]: `metav1.Condition` helpers with upstream semantics.
//! - [`owner`]: owner-reference lookups along the Cluster API owner chain.
//! - [`crd`]: CRD post-processing and the list of every CRD Capstan defines.
//! - [`ipam`]: the Cluster API IPAM contract kinds (`IPAddressClaim`, `IPAddress`).

pub mod conditions;
pub mod contract;
pub mod core;
pub mod crd;
pub mod ipam;
pub mod owner;

/// Fields of an object that Capstan does not model, kept verbatim so writes never lose them.
pub type Unknown = std::collections::BTreeMap<String, serde_json::Value>;
