//! Owner references along the Cluster API owner chain.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

/// The group part of an `apiVersion` (`""` for the core group).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// The first owner of the given group and kind, whatever its version: CAPI matches owners by
/// group and kind so that a version bump does not orphan objects.
pub fn find_owner<'a>(meta: &'a ObjectMeta, group: &str, kind: &str) -> Option<&'a OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == kind && api_group(&o.api_version) == group)
}

/// The owning CAPI Machine, if core has set it yet.
pub fn owner_machine(meta: &ObjectMeta) -> Option<&OwnerReference> {
    find_owner(meta, crate::core::GROUP, "Machine")
}

/// The owning CAPI Cluster, if core has set it yet.
pub fn owner_cluster(meta: &ObjectMeta) -> Option<&OwnerReference> {
    find_owner(meta, crate::core::GROUP, "Cluster")
}

/// The controller owner, if any.
pub fn controller_owner(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// An owner reference to `owner`, which must have been read from the API server (it needs a UID).
pub fn owner_reference<K>(owner: &K, controller: bool) -> Option<OwnerReference>
where
    K: Resource<DynamicType = ()>,
{
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: controller.then_some(true),
        block_owner_deletion: controller.then_some(true),
    })
}

/// Adds `new` to `meta`'s owners, replacing an existing reference to the same object (same group,
/// kind and name). Returns whether anything changed.
pub fn ensure_owner_reference(meta: &mut ObjectMeta, new: OwnerReference) -> bool {
    let refs = meta.owner_references.get_or_insert_with(Vec::new);
    let same = |o: &OwnerReference| {
        o.kind == new.kind && o.name == new.name && api_group(&o.api_version) == api_group(&new.api_version)
    };
    match refs.iter_mut().find(|o| same(o)) {
        Some(existing) if *existing == new => false,
        Some(existing) => {
            *existing = new;
            true
        }
        None => {
            refs.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Machine;

    fn owner(api_version: &str, kind: &str, name: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            ..Default::default()
        }
    }

    #[test]
    fn finds_owners_by_group_and_kind_any_version() {
        let meta = ObjectMeta {
            owner_references: Some(vec![
                owner("apps/v1", "Machine", "not-capi"),
                owner("cluster.x-k8s.io/v1beta1", "Machine", "m1"),
                owner("cluster.x-k8s.io/v1beta2", "Cluster", "c1"),
            ]),
            ..Default::default()
        };
        assert_eq!(owner_machine(&meta).unwrap().name, "m1");
        assert_eq!(owner_cluster(&meta).unwrap().name, "c1");
        assert!(controller_owner(&meta).is_none());
        assert_eq!(api_group("v1"), "");
    }

    #[test]
    fn ensure_replaces_and_adds() {
        let mut meta = ObjectMeta::default();
        let mut m = Machine::new("m1", Default::default());
        assert!(owner_reference(&m, true).is_none(), "no uid yet");
        m.metadata.uid = Some("u1".into());
        let r = owner_reference(&m, true).unwrap();
        assert_eq!(r.api_version, "cluster.x-k8s.io/v1beta2");
        assert_eq!(r.controller, Some(true));
        assert!(ensure_owner_reference(&mut meta, r.clone()));
        assert!(!ensure_owner_reference(&mut meta, r.clone()));
        let mut old = r.clone();
        old.api_version = "cluster.x-k8s.io/v1beta1".into();
        assert!(ensure_owner_reference(&mut meta, old));
        assert_eq!(meta.owner_references.as_ref().unwrap().len(), 1);
        assert!(ensure_owner_reference(&mut meta, owner("v1", "Secret", "s")));
        assert_eq!(meta.owner_references.unwrap().len(), 2);
        assert_eq!(
            controller_owner(&ObjectMeta {
                owner_references: Some(vec![r]),
                ..Default::default()
            })
            .unwrap()
            .name,
            "m1"
        );
    }
}
