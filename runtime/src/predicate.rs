//! Watch predicates for related kinds: a Machine's or Cluster's status changes many times a
//! minute (CAPI core rewrites conditions), and each change used to wake every InfraMachine and
//! KubeadmConfig of that cluster. A [`ChangeFilter`] remembers, per object, a digest of only the
//! fields a controller reads and lets an event through when that digest changed (or the object
//! was seen for the first time). kube-runtime's own predicate streams need an unstable feature;
//! this works inside the `watches` mapper.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use kube::Resource;

/// Remembers the last digest of the fields `F` picks, per object uid.
pub struct ChangeFilter<K, F> {
    fields: F,
    seen: Mutex<HashMap<String, u64>>,
    _kind: std::marker::PhantomData<fn(&K)>,
}

impl<K, F, V> ChangeFilter<K, F>
where
    K: Resource,
    F: Fn(&K) -> V,
    V: Hash,
{
    pub fn new(fields: F) -> Self {
        ChangeFilter {
            fields,
            seen: Mutex::new(HashMap::new()),
            _kind: std::marker::PhantomData,
        }
    }

    /// True when what the controller reads of `obj` differs from the last time (always for a
    /// deleted or deleting object, so its dependents hear of it).
    pub fn changed(&self, obj: &K) -> bool {
        let meta = obj.meta();
        let uid = meta.uid.clone().unwrap_or_default();
        let mut seen = self.seen.lock().expect("change filter poisoned");
        if meta.deletion_timestamp.is_some() {
            // Going away: forget it (the map holds live objects only) and let it through.
            seen.remove(&uid);
            return true;
        }
        let mut h = DefaultHasher::new();
        (self.fields)(obj).hash(&mut h);
        let digest = h.finish();
        seen.insert(uid, digest) != Some(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(uid: &str, data: &str, status_noise: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "uid": uid, "annotations": {"noise": status_noise}},
            "data": {"k": data}
        }))
        .unwrap()
    }

    #[test]
    fn only_changes_of_the_chosen_fields_pass() {
        let f = ChangeFilter::new(|c: &ConfigMap| c.data.clone());
        assert!(f.changed(&cm("1", "a", "n1")), "first sight passes");
        assert!(!f.changed(&cm("1", "a", "n2")), "other fields do not");
        assert!(f.changed(&cm("1", "b", "n2")), "a chosen field does");
        assert!(f.changed(&cm("2", "b", "n2")), "another object is another object");
    }
}
