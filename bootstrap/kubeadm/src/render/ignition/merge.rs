//! Ignition v3 config merging (coreos/ignition `docs/operator-notes.md`, "Config Merging"):
//! objects merge key by key, keyed lists merge entry by entry with the child winning
//! (file/directory/link `path`, shared across the three; unit and dropin `name`; user and
//! group `name`), other lists and scalars are replaced by the child's.

use serde_json::{Map, Value};

/// The key that identifies an entry of the list stored under `field`, if it is a keyed list.
fn list_key(field: &str) -> Option<&'static str> {
    match field {
        "files" | "directories" | "links" | "disks" | "filesystems" | "raid" | "luks" => Some("path"),
        "units" | "dropins" | "users" | "groups" => Some("name"),
        _ => None,
    }
}

/// Merges `child` into `parent`; the child wins.
pub fn merge(parent: &mut Value, child: Value) {
    match (parent, child) {
        (Value::Object(p), Value::Object(c)) => merge_object(p, c),
        (p, c) => *p = c,
    }
}

fn merge_object(parent: &mut Map<String, Value>, child: Map<String, Value>) {
    for (k, v) in child {
        match (parent.get_mut(&k), list_key(&k), v) {
            (Some(Value::Array(p)), Some(key), Value::Array(c)) => merge_list(p, c, key),
            // A file's new contents replace the old as a whole: a `compression` left over
            // from the parent would corrupt them.
            (Some(p), _, v) if k != "contents" => merge(p, v),
            (_, _, v) => {
                parent.insert(k, v);
            }
        }
    }
}

/// An entry with the same key merges into the parent's (child wins per field); a new one is
/// appended. Paths are shared across files, directories and links, which are merged by the
/// caller through `storage` — a file replacing a directory at the same path is not handled
/// (Ignition itself would reject the parent then).
fn merge_list(parent: &mut Vec<Value>, child: Vec<Value>, key: &str) {
    for c in child {
        let id = c.get(key).cloned();
        match parent.iter_mut().find(|p| id.is_some() && p.get(key) == id.as_ref()) {
            Some(p) => merge(p, c),
            None => parent.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn child_wins_by_path_and_name_and_nested_dropins() {
        let mut p = json!({"storage": {"files": [{"path": "/a", "mode": 420}]},
            "systemd": {"units": [{"name": "x.service", "enabled": true, "dropins": [{"name": "a.conf", "contents": "1"}]}]}});
        merge(
            &mut p,
            json!({"storage": {"files": [{"path": "/a", "mode": 384}, {"path": "/b"}]},
            "systemd": {"units": [{"name": "x.service", "dropins": [{"name": "a.conf", "contents": "2"}]}]}}),
        );
        assert_eq!(
            p,
            json!({"storage": {"files": [{"path": "/a", "mode": 384}, {"path": "/b"}]},
            "systemd": {"units": [{"name": "x.service", "enabled": true, "dropins": [{"name": "a.conf", "contents": "2"}]}]}})
        );
    }
}
