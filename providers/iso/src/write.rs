//! The ISO 9660 writer: a directory tree (what an Ignition volume needs: `ignition/config.ign`)
//! in two trees, the primary one with level-1 names and a Joliet one with the real names.
//!
//! Layout, in sectors: system area, the primary and Joliet volume descriptors and the
//! terminator, four path tables (L and M for each tree), the primary tree's directories, the
//! Joliet tree's, then file data. Directories are numbered breadth first with children sorted by
//! name, which is the path-table order ECMA-119 asks for.

use std::collections::BTreeMap;

use crate::{FIRST_DESCRIPTOR, IsoError, IsoFile, SECTOR, STAMP_YEAR};

/// A directory of the tree being written; index 0 is the root.
struct Dir<'a> {
    /// Index of the parent in the breadth-first list (the root is its own parent).
    parent: usize,
    /// Children by name: `Ok(file index)` or `Err(dir index)`.
    children: BTreeMap<&'a str, Result<usize, usize>>,
}

/// Where one tree's directories landed.
struct Placed {
    extent: Vec<usize>,
    size: Vec<usize>,
}

/// Builds an image holding `files`; a name with `/` puts the file in subdirectories.
pub fn build_iso(label: &str, files: &[IsoFile]) -> Result<Vec<u8>, IsoError> {
    if label.is_empty() || label.len() > 16 || !label.is_ascii() {
        return Err(IsoError::BadLabel(label.to_string()));
    }
    let dirs = tree(files)?;
    let primary = names(&dirs, primary_name);
    let joliet = names(&dirs, |n, _| n.encode_utf16().flat_map(u16::to_be_bytes).collect());

    let path_l = FIRST_DESCRIPTOR + 3;
    let primary_table = path_table(&dirs, &primary, &[], false);
    let joliet_table = path_table(&dirs, &joliet, &[], false);
    let pt_sectors = |t: &[u8]| t.len().div_ceil(SECTOR).max(1);
    let joliet_path_l = path_l + 2 * pt_sectors(&primary_table);
    let mut next = joliet_path_l + 2 * pt_sectors(&joliet_table);
    let primary_at = place(&dirs, &primary, &mut next);
    let joliet_at = place(&dirs, &joliet, &mut next);
    let mut file_extent = vec![0usize; files.len()];
    for (i, f) in files.iter().enumerate() {
        file_extent[i] = next;
        next += f.data.len().div_ceil(SECTOR).max(1);
    }
    let total = u32::try_from(next).map_err(|_| IsoError::TooLarge)?;
    let mut img = vec![0u8; next * SECTOR];

    for (kind, table_at, at, table_len) in [
        (1u8, path_l, &primary_at, primary_table.len()),
        (2u8, joliet_path_l, &joliet_at, joliet_table.len()),
    ] {
        let root = dir_record(u32_of(at.extent[0])?, u32_of(at.size[0])?, true, &[0]);
        let d = &mut img[(FIRST_DESCRIPTOR + usize::from(kind) - 1) * SECTOR..];
        write_descriptor(d, kind, label, total, u32_of(table_at)?, u32_of(table_len)?, &root);
    }
    let term = &mut img[(FIRST_DESCRIPTOR + 2) * SECTOR..];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;

    for (table_at, tree_names, at) in [(path_l, &primary, &primary_at), (joliet_path_l, &joliet, &joliet_at)] {
        let extents: Vec<u32> = at.extent.iter().map(|&e| u32_of(e)).collect::<Result<_, _>>()?;
        let l = path_table(&dirs, tree_names, &extents, false);
        let m = path_table(&dirs, tree_names, &extents, true);
        let sectors = l.len().div_ceil(SECTOR).max(1);
        img[table_at * SECTOR..table_at * SECTOR + l.len()].copy_from_slice(&l);
        let m_at = (table_at + sectors) * SECTOR;
        img[m_at..m_at + m.len()].copy_from_slice(&m);
        write_directories(&mut img, &dirs, files, tree_names, at, &file_extent)?;
    }
    for (f, &extent) in files.iter().zip(&file_extent) {
        img[extent * SECTOR..extent * SECTOR + f.data.len()].copy_from_slice(&f.data);
    }
    Ok(img)
}

/// The directories of `files`, breadth first, children sorted by name.
fn tree(files: &[IsoFile]) -> Result<Vec<Dir<'_>>, IsoError> {
    let mut dirs = vec![Dir {
        parent: 0,
        children: BTreeMap::new(),
    }];
    // Build depth first, then renumber breadth first.
    for (i, f) in files.iter().enumerate() {
        let parts: Vec<&str> = f.name.split('/').collect();
        if !parts.iter().all(|p| valid_component(p)) {
            return Err(IsoError::BadName(f.name.clone()));
        }
        let (leaf, path) = parts.split_last().ok_or_else(|| IsoError::BadName(f.name.clone()))?;
        let mut at = 0;
        for part in path {
            at = match dirs[at].children.get(part) {
                Some(Err(d)) => *d,
                Some(Ok(_)) => return Err(IsoError::Duplicate(f.name.clone())),
                None => {
                    dirs.push(Dir {
                        parent: at,
                        children: BTreeMap::new(),
                    });
                    let new = dirs.len() - 1;
                    dirs[at].children.insert(part, Err(new));
                    new
                }
            };
        }
        if dirs[at].children.insert(leaf, Ok(i)).is_some() {
            return Err(IsoError::Duplicate(f.name.clone()));
        }
    }
    Ok(breadth_first(dirs))
}

fn breadth_first(mut dirs: Vec<Dir<'_>>) -> Vec<Dir<'_>> {
    let mut order = vec![0usize];
    let mut i = 0;
    while i < order.len() {
        order.extend(dirs[order[i]].children.values().filter_map(|c| c.err()));
        i += 1;
    }
    let mut new_index = vec![0usize; dirs.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut out: Vec<Option<Dir<'_>>> = dirs.drain(..).map(Some).collect();
    order
        .iter()
        .map(|&old| {
            let mut d = out[old].take().expect("each directory once");
            d.parent = new_index[d.parent];
            for c in d.children.values_mut() {
                if let Err(sub) = c {
                    *sub = new_index[*sub];
                }
            }
            d
        })
        .collect()
}

fn valid_component(p: &str) -> bool {
    !p.is_empty()
        && p != "."
        && p != ".."
        && p.encode_utf16().count() <= 64
        && !p.chars().any(|c| c == ';' || c.is_control())
}

/// Each tree's identifiers: per directory, its children's names in that tree.
type TreeNames = Vec<Vec<(Vec<u8>, Result<usize, usize>)>>;

/// Identifiers in one tree, per directory, sorted by identifier as ECMA-119 wants.
fn names(dirs: &[Dir<'_>], name_of: impl Fn(&str, NameKind<'_>) -> Vec<u8>) -> TreeNames {
    dirs.iter()
        .map(|d| {
            let mut used: Vec<Vec<u8>> = Vec::new();
            let mut out: Vec<(Vec<u8>, Result<usize, usize>)> = d
                .children
                .iter()
                .map(|(name, child)| {
                    let kind = match child {
                        Ok(_) => NameKind::File(&used),
                        Err(_) => NameKind::Dir(&used),
                    };
                    let id = name_of(name, kind);
                    used.push(id.clone());
                    (id, *child)
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        })
        .collect()
}

/// What an identifier names, with the identifiers already used in its directory.
enum NameKind<'a> {
    File(&'a [Vec<u8>]),
    Dir(&'a [Vec<u8>]),
}

/// ISO 9660 level 1: files `NAME8.EXT;1`, directories `NAME8`, in `A-Z0-9_`, unique per directory.
fn primary_name(name: &str, kind: NameKind<'_>) -> Vec<u8> {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c.is_ascii_alphanumeric() { c } else { '_' }
            })
            .take(max)
            .collect()
    };
    let (stem, ext, used, is_dir) = match kind {
        NameKind::Dir(used) => (name, "", used, true),
        NameKind::File(used) => match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s, e, used, false),
            _ => (name, "", used, false),
        },
    };
    let stem = clean(stem, 8);
    let ext = clean(ext, 3);
    for n in 0u32.. {
        let candidate = if n == 0 {
            stem.clone()
        } else {
            let suffix = n.to_string();
            format!("{}~{suffix}", &stem[..stem.len().min(8 - suffix.len() - 1)])
        };
        let full = if is_dir {
            candidate.into_bytes()
        } else {
            format!("{candidate}.{ext};1").into_bytes()
        };
        if !used.contains(&full) {
            return full;
        }
    }
    unreachable!("u32 suffixes run out only after 4 billion names")
}

/// Gives each directory of a tree its extent and size, from `next` on.
fn place(dirs: &[Dir<'_>], names: &TreeNames, next: &mut usize) -> Placed {
    let mut placed = Placed {
        extent: Vec::with_capacity(dirs.len()),
        size: Vec::with_capacity(dirs.len()),
    };
    for children in names {
        let size = dir_size(children.iter().map(|(n, _)| n.len()));
        placed.extent.push(*next);
        placed.size.push(size);
        *next += size / SECTOR;
    }
    placed
}

/// A path table (type L little-endian, type M big-endian); extents are zero while sizing.
fn path_table(dirs: &[Dir<'_>], names: &TreeNames, extents: &[u32], big_endian: bool) -> Vec<u8> {
    let mut t = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let id: Vec<u8> = if i == 0 {
            vec![0]
        } else {
            names[d.parent]
                .iter()
                .find(|(_, c)| *c == Err(i))
                .map(|(n, _)| n.clone())
                .unwrap_or_default()
        };
        let extent = extents.get(i).copied().unwrap_or(0);
        // Directory numbers count from 1.
        let parent = u16::try_from(d.parent + 1).unwrap_or(u16::MAX);
        t.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        t.push(0);
        if big_endian {
            t.extend_from_slice(&extent.to_be_bytes());
            t.extend_from_slice(&parent.to_be_bytes());
        } else {
            t.extend_from_slice(&extent.to_le_bytes());
            t.extend_from_slice(&parent.to_le_bytes());
        }
        t.extend_from_slice(&id);
        if id.len() % 2 == 1 {
            t.push(0);
        }
    }
    t
}

fn write_directories(
    img: &mut [u8],
    dirs: &[Dir<'_>],
    files: &[IsoFile],
    names: &TreeNames,
    at: &Placed,
    file_extent: &[usize],
) -> Result<(), IsoError> {
    for (i, d) in dirs.iter().enumerate() {
        let mut records = vec![
            dir_record(u32_of(at.extent[i])?, u32_of(at.size[i])?, true, &[0]),
            dir_record(u32_of(at.extent[d.parent])?, u32_of(at.size[d.parent])?, true, &[1]),
        ];
        for (name, child) in &names[i] {
            records.push(match child {
                Ok(f) => dir_record(u32_of(file_extent[*f])?, u32_of(files[*f].data.len())?, false, name),
                Err(sub) => dir_record(u32_of(at.extent[*sub])?, u32_of(at.size[*sub])?, true, name),
            });
        }
        let mut pos = at.extent[i] * SECTOR;
        for r in records {
            // A record never crosses a sector boundary.
            if pos % SECTOR + r.len() > SECTOR {
                pos = pos.next_multiple_of(SECTOR);
            }
            img[pos..pos + r.len()].copy_from_slice(&r);
            pos += r.len();
        }
    }
    Ok(())
}

fn u32_of(n: usize) -> Result<u32, IsoError> {
    u32::try_from(n).map_err(|_| IsoError::TooLarge)
}

/// Bytes used by a directory's records, rounded up to whole sectors.
fn dir_size(names: impl Iterator<Item = usize>) -> usize {
    let mut sectors = 1;
    let mut used = 34 * 2; // "." and ".."
    for n in names {
        let len = record_len(n);
        if used + len > SECTOR {
            sectors += 1;
            used = 0;
        }
        used += len;
    }
    sectors * SECTOR
}

fn record_len(name_len: usize) -> usize {
    33 + name_len + usize::from(name_len.is_multiple_of(2))
}

fn both_u32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

fn both_u16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

fn dir_record(extent: u32, size: u32, is_dir: bool, name: &[u8]) -> Vec<u8> {
    let len = record_len(name.len());
    let mut r = vec![0u8; len];
    r[0] = u8::try_from(len).unwrap_or(u8::MAX);
    r[2..10].copy_from_slice(&both_u32(extent));
    r[10..18].copy_from_slice(&both_u32(size));
    r[18] = u8::try_from(STAMP_YEAR - 1900).unwrap_or(0);
    r[19] = 1;
    r[20] = 1;
    r[25] = if is_dir { 2 } else { 0 };
    r[28..32].copy_from_slice(&both_u16(1));
    r[32] = u8::try_from(name.len()).unwrap_or(u8::MAX);
    r[33..33 + name.len()].copy_from_slice(name);
    r
}

/// Writes a primary (kind 1) or Joliet supplementary (kind 2) volume descriptor.
fn write_descriptor(d: &mut [u8], kind: u8, label: &str, total: u32, path_l: u32, path_len: u32, root: &[u8]) {
    let joliet = kind == 2;
    let text = |out: &mut [u8], s: &str| {
        if joliet {
            let mut units = s
                .encode_utf16()
                .flat_map(u16::to_be_bytes)
                .chain([0u8, b' '].into_iter().cycle());
            for b in out.iter_mut() {
                *b = units.next().unwrap_or(0);
            }
        } else {
            for (i, b) in out.iter_mut().enumerate() {
                *b = s.as_bytes().get(i).copied().unwrap_or(b' ');
            }
        }
    };
    let table_sectors = path_len.div_ceil(SECTOR as u32).max(1);
    d[0] = kind;
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    text(&mut d[8..40], "LINUX");
    text(&mut d[40..72], label);
    d[80..88].copy_from_slice(&both_u32(total));
    if joliet {
        // UCS-2 level 3.
        d[88..91].copy_from_slice(b"%/E");
    }
    d[120..124].copy_from_slice(&both_u16(1));
    d[124..128].copy_from_slice(&both_u16(1));
    d[128..132].copy_from_slice(&both_u16(SECTOR as u16));
    d[132..140].copy_from_slice(&both_u32(path_len));
    d[140..144].copy_from_slice(&path_l.to_le_bytes());
    d[148..152].copy_from_slice(&(path_l + table_sectors).to_be_bytes());
    d[156..190].copy_from_slice(root);
    for range in [190..318, 318..446, 446..574, 574..702, 702..739, 739..776, 776..813] {
        text(&mut d[range], "");
    }
    let stamp = format!("{STAMP_YEAR:04}010100000000");
    for at in [813, 830, 864] {
        d[at..at + 16].copy_from_slice(stamp.as_bytes());
        d[at + 16] = 0;
    }
    d[847..863].copy_from_slice(b"0000000000000000");
    d[881] = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_names_are_unique_level1() {
        let mut used = Vec::new();
        for n in ["user-data", "user-data2", "user-data.yaml"] {
            let p = primary_name(n, NameKind::File(&used));
            assert!(!used.contains(&p));
            used.push(p);
        }
        assert_eq!(used[0], b"USER_DAT.;1");
        assert_eq!(used[1], b"USER_D~1.;1");
        assert_eq!(used[2], b"USER_DAT.YAM;1");
        assert_eq!(primary_name("ignition", NameKind::Dir(&[])), b"IGNITION");
    }
}
