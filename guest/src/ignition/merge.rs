//! `config.merge`: the child config is merged over its parent (coreos/ignition `config/merge`,
//! docs/operator-notes.md "Config Merging"). A field the child sets wins; lists of objects are
//! de-duplicated by their key (files, directories and links by `path`, across the three lists;
//! units, dropins, users and groups by `name`) and matching entries are merged field by field;
//! other lists (`append`, `sshAuthorizedKeys`, argument lists) are appended, scalars without
//! repeats.

use serde_json::{Map, Value};

/// The storage lists that share one `path` namespace.
const FS_LISTS: [&str; 3] = ["files", "directories", "links"];

/// Merges `child` over `parent`. The child's `ignition.config` is not carried over: its
/// references have already been resolved.
pub fn merge(parent: Value, mut child: Value) -> Value {
    if let Some(ign) = child.get_mut("ignition").and_then(Value::as_object_mut) {
        ign.remove("config");
        ign.remove("version");
    }
    let mut out = parent;
    merge_value(&mut out, child, "");
    out
}

fn merge_value(into: &mut Value, from: Value, at: &str) {
    match (into, from) {
        (_, Value::Null) => {}
        (Value::Object(a), Value::Object(b)) if at == "storage" => merge_storage(a, b),
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                merge_value(a.entry(k).or_insert(Value::Null), v, &path);
            }
        }
        (Value::Array(a), Value::Array(b)) => merge_list(a, b, key_of(at)),
        (a, b) => *a = b,
    }
}

/// The field that identifies an entry of the list at `at`.
fn key_of(at: &str) -> Option<&'static str> {
    match at.rsplit('.').next().unwrap_or_default() {
        "units" | "dropins" | "users" | "groups" | "luks" | "raid" => Some("name"),
        "disks" => Some("device"),
        "filesystems" => Some("path"),
        _ => None,
    }
}

fn merge_list(into: &mut Vec<Value>, from: Vec<Value>, key: Option<&str>) {
    for item in from {
        let id = key.and_then(|k| item.get(k).cloned());
        let at = id.and_then(|id| into.iter().position(|e| key.and_then(|k| e.get(k)) == Some(&id)));
        match at {
            Some(i) => merge_value(&mut into[i], item, ""),
            None if !item.is_object() && into.contains(&item) => {}
            None => into.push(item),
        }
    }
}

fn merge_storage(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        if !FS_LISTS.contains(&k.as_str()) {
            merge_value(into.entry(k.clone()).or_insert(Value::Null), v, &format!("storage.{k}"));
            continue;
        }
        let Value::Array(entries) = v else { continue };
        for entry in entries {
            let path = entry.get("path").cloned();
            let same = into
                .get_mut(&k)
                .and_then(Value::as_array_mut)
                .and_then(|l| l.iter_mut().find(|e| path.is_some() && e.get("path") == path.as_ref()));
            if let Some(existing) = same {
                merge_value(existing, entry, &format!("storage.{k}.entry"));
                continue;
            }
            // A file in the child replaces a link or directory of the parent at that path.
            for other in FS_LISTS.iter().filter(|o| **o != k) {
                if let Some(list) = into.get_mut(*other).and_then(Value::as_array_mut) {
                    list.retain(|e| path.is_none() || e.get("path") != path.as_ref());
                }
            }
            match into.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(list) => list.push(entry),
                slot => *slot = Value::Array(vec![entry]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_child_wins_by_key() {
        let parent = json!({"ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/hostname", "mode": 420, "contents": {"source": "data:,a"}}],
                        "links": [{"path": "/etc/l", "target": "/x"}]},
            "systemd": {"units": [{"name": "a.service", "enabled": true, "dropins": [{"name": "1.conf", "contents": "x"}]}]},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["k1"]}]}});
        let child = json!({"ignition": {"version": "3.4.0", "config": {"merge": []}},
            "storage": {"files": [{"path": "/etc/hostname", "contents": {"source": "data:,b"}},
                                  {"path": "/etc/l", "contents": {"source": "data:,c"}}]},
            "systemd": {"units": [{"name": "a.service", "dropins": [{"name": "1.conf", "contents": "y"}]}]},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["k1", "k2"]}]}});
        let m = merge(parent, child);
        assert_eq!(m["storage"]["files"][0]["contents"]["source"], "data:,b");
        assert_eq!(m["storage"]["files"][0]["mode"], 420);
        assert_eq!(m["storage"]["files"][1]["path"], "/etc/l");
        assert_eq!(m["storage"]["links"], json!([]));
        assert_eq!(m["systemd"]["units"][0]["enabled"], true);
        assert_eq!(
            m["systemd"]["units"][0]["dropins"],
            json!([{"name": "1.conf", "contents": "y"}])
        );
        assert_eq!(m["passwd"]["users"][0]["sshAuthorizedKeys"], json!(["k1", "k2"]));
        assert!(m["ignition"].get("config").is_none());
    }
}
