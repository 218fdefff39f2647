//! Bootstrap volumes as ISO 9660 images, and the reader a (simulated) guest uses to find its
//! NoCloud seed.
//!
//! FusionCompute's public API has no user-data field, so bootstrap data reaches the guest on a
//! CD-ROM. For cloud-init that is a NoCloud seed: volume label `cidata` with `user-data`,
//! `meta-data` and `network-config` in the root directory.
//!
//! The writer is our own (the only published Rust ISO writer, `hadris-iso`, is a release
//! candidate): a single root directory, ISO 9660 level 1 names in the primary tree (which
//! cannot hold lowercase or `-`) plus a Joliet tree with the real names, which is what Linux
//! (`isofs`) and blkid read. Output is deterministic: same input, same bytes.

use std::net::Ipv4Addr;

const SECTOR: usize = 2048;
/// Sectors 0..16 are the system area.
const FIRST_DESCRIPTOR: usize = 16;
/// Fixed timestamp (2020-01-01T00:00:00Z) so identical input gives identical images.
const STAMP_YEAR: u16 = 2020;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsoError {
    #[error("file name {0:?} is empty, too long (max 64) or contains '/', ';' or a control character")]
    BadName(String),
    #[error("duplicate file name {0:?}")]
    Duplicate(String),
    #[error("volume label {0:?} must be 1-16 ASCII characters")]
    BadLabel(String),
    #[error("image too large")]
    TooLarge,
    #[error("not an ISO 9660 image: {0}")]
    Malformed(&'static str),
}

/// One file in the root directory of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoFile {
    pub name: String,
    pub data: Vec<u8>,
}

impl IsoFile {
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        IsoFile {
            name: name.into(),
            data: data.into(),
        }
    }
}

/// A bootstrap layout (NoCloud now, Ignition later): a volume label and the files it carries.
pub trait BootstrapVolume {
    fn volume_label(&self) -> &str;
    fn files(&self) -> Vec<IsoFile>;

    fn to_iso(&self) -> Result<Vec<u8>, IsoError> {
        build_iso(self.volume_label(), &self.files())
    }
}

/// A cloud-init NoCloud seed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NoCloudSeed {
    /// cloud-init re-runs per-instance modules when this changes; use the VM's stable identity.
    pub instance_id: String,
    pub hostname: String,
    pub user_data: Vec<u8>,
    /// A network-config (v2) document; `None` writes [`dhcp_network_config`].
    pub network_config: Option<String>,
    /// The Node's providerID, as meta-data key `provider-id`: cloud-init exposes it to jinja
    /// templates as `{{ ds.meta_data.provider_id }}`, which is how a cluster template hands it to
    /// the kubelet (`--provider-id`) when no cloud-controller-manager sets it.
    pub provider_id: Option<String>,
}

/// The user data is bootstrap data (join tokens, private keys): `Debug` shows its size only.
impl std::fmt::Debug for NoCloudSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoCloudSeed")
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .field("user_data", &format_args!("<redacted, {} bytes>", self.user_data.len()))
            .field("network_config", &self.network_config)
            .field("provider_id", &self.provider_id)
            .finish()
    }
}

pub const NOCLOUD_LABEL: &str = "cidata";

impl NoCloudSeed {
    pub fn meta_data(&self) -> String {
        let mut out = format!(
            "instance-id: {}\nlocal-hostname: {}\n",
            yaml_scalar(&self.instance_id),
            yaml_scalar(&self.hostname)
        );
        if let Some(id) = &self.provider_id {
            out.push_str(&format!("provider-id: {}\n", yaml_scalar(id)));
        }
        out
    }
}

impl BootstrapVolume for NoCloudSeed {
    fn volume_label(&self) -> &str {
        NOCLOUD_LABEL
    }

    fn files(&self) -> Vec<IsoFile> {
        let network = self.network_config.clone().unwrap_or_else(dhcp_network_config);
        vec![
            IsoFile::new("user-data", self.user_data.clone()),
            IsoFile::new("meta-data", self.meta_data()),
            IsoFile::new("network-config", network),
        ]
    }
}

/// DHCP on every ethernet NIC. Written instead of leaving `network-config` out because an absent
/// file lets the image's own fallback decide, which differs between distributions.
pub fn dhcp_network_config() -> String {
    "version: 2\nethernets:\n  all-en:\n    match:\n      name: \"e*\"\n    dhcp4: true\n".to_string()
}

/// A static address on the first ethernet NIC (network-config v2).
pub fn static_network_config(address: Ipv4Addr, prefix_len: u8, gateway: Option<Ipv4Addr>, dns: &[Ipv4Addr]) -> String {
    let mut s = format!(
        "version: 2\nethernets:\n  primary:\n    match:\n      name: \"e*\"\n    addresses:\n      - {address}/{prefix_len}\n"
    );
    if let Some(gw) = gateway {
        s.push_str(&format!("    routes:\n      - to: default\n        via: {gw}\n"));
    }
    if !dns.is_empty() {
        let list: Vec<String> = dns.iter().map(ToString::to_string).collect();
        s.push_str(&format!("    nameservers:\n      addresses: [{}]\n", list.join(", ")));
    }
    s
}

/// Quotes a YAML scalar when it could be read as something other than a plain string.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

struct Placed<'a> {
    file: &'a IsoFile,
    primary_name: Vec<u8>,
    joliet_name: Vec<u8>,
    extent: u32,
}

/// Builds an image with `files` in its root directory.
pub fn build_iso(label: &str, files: &[IsoFile]) -> Result<Vec<u8>, IsoError> {
    if label.is_empty() || label.len() > 16 || !label.is_ascii() {
        return Err(IsoError::BadLabel(label.to_string()));
    }
    let mut sorted: Vec<&IsoFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut used_primary: Vec<Vec<u8>> = Vec::new();
    let mut placed = Vec::with_capacity(sorted.len());
    for (i, f) in sorted.iter().enumerate() {
        let valid = !f.name.is_empty()
            && f.name.encode_utf16().count() <= 64
            && !f.name.chars().any(|c| c == '/' || c == ';' || c.is_control());
        if !valid {
            return Err(IsoError::BadName(f.name.clone()));
        }
        if i > 0 && sorted[i - 1].name == f.name {
            return Err(IsoError::Duplicate(f.name.clone()));
        }
        let primary = primary_name(&f.name, &used_primary);
        used_primary.push(primary.clone());
        placed.push(Placed {
            file: f,
            primary_name: primary,
            joliet_name: f.name.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            extent: 0,
        });
    }
    // ECMA-119 wants directory records sorted by identifier.
    placed.sort_by(|a, b| a.primary_name.cmp(&b.primary_name));

    // Layout: descriptors (PVD, Joliet SVD, terminator), four path tables, two root directories,
    // then file data.
    let path_l = FIRST_DESCRIPTOR + 3;
    let primary_dir = path_l + 4;
    let primary_dir_len = dir_size(placed.iter().map(|p| p.primary_name.len()));
    let joliet_dir = primary_dir + primary_dir_len / SECTOR;
    let joliet_dir_len = dir_size(placed.iter().map(|p| p.joliet_name.len()));
    let mut next = joliet_dir + joliet_dir_len / SECTOR;
    for p in &mut placed {
        p.extent = u32::try_from(next).map_err(|_| IsoError::TooLarge)?;
        next += p.file.data.len().div_ceil(SECTOR).max(1);
    }
    let total = next;
    let total_u32 = u32::try_from(total).map_err(|_| IsoError::TooLarge)?;

    let mut img = vec![0u8; total * SECTOR];
    let to_u32 = |n: usize| u32::try_from(n).map_err(|_| IsoError::TooLarge);
    let primary_root = dir_record(to_u32(primary_dir)?, to_u32(primary_dir_len)?, true, &[0]);
    let joliet_root = dir_record(to_u32(joliet_dir)?, to_u32(joliet_dir_len)?, true, &[0]);

    write_descriptor(
        &mut img[FIRST_DESCRIPTOR * SECTOR..],
        1,
        label,
        total_u32,
        to_u32(path_l)?,
        &primary_root,
    );
    write_descriptor(
        &mut img[(FIRST_DESCRIPTOR + 1) * SECTOR..],
        2,
        label,
        total_u32,
        to_u32(path_l + 2)?,
        &joliet_root,
    );
    let term = &mut img[(FIRST_DESCRIPTOR + 2) * SECTOR..];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;

    // Path tables (root only): L (little-endian) then M (big-endian), for each tree.
    for (i, dir) in [primary_dir, primary_dir, joliet_dir, joliet_dir]
        .into_iter()
        .enumerate()
    {
        let t = &mut img[(path_l + i) * SECTOR..];
        t[0] = 1;
        let extent = to_u32(dir)?;
        if i % 2 == 0 {
            t[2..6].copy_from_slice(&extent.to_le_bytes());
            t[6..8].copy_from_slice(&1u16.to_le_bytes());
        } else {
            t[2..6].copy_from_slice(&extent.to_be_bytes());
            t[6..8].copy_from_slice(&1u16.to_be_bytes());
        }
    }

    for (dir, len, joliet) in [
        (primary_dir, primary_dir_len, false),
        (joliet_dir, joliet_dir_len, true),
    ] {
        let mut records = vec![
            dir_record(to_u32(dir)?, to_u32(len)?, true, &[0]),
            dir_record(to_u32(dir)?, to_u32(len)?, true, &[1]),
        ];
        for p in &placed {
            let name = if joliet { &p.joliet_name } else { &p.primary_name };
            records.push(dir_record(p.extent, to_u32(p.file.data.len())?, false, name));
        }
        let mut pos = dir * SECTOR;
        for r in records {
            // A record never crosses a sector boundary.
            if pos % SECTOR + r.len() > SECTOR {
                pos = pos.next_multiple_of(SECTOR);
            }
            img[pos..pos + r.len()].copy_from_slice(&r);
            pos += r.len();
        }
    }

    for p in &placed {
        let at = p.extent as usize * SECTOR;
        img[at..at + p.file.data.len()].copy_from_slice(&p.file.data);
    }
    Ok(img)
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
fn write_descriptor(d: &mut [u8], kind: u8, label: &str, total: u32, path_l: u32, root: &[u8]) {
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
    d[132..140].copy_from_slice(&both_u32(10));
    d[140..144].copy_from_slice(&path_l.to_le_bytes());
    d[148..152].copy_from_slice(&(path_l + 1).to_be_bytes());
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

/// ISO 9660 level 1 name: `NAME8.EXT;1` in `A-Z0-9_`, made unique against `used`.
fn primary_name(name: &str, used: &[Vec<u8>]) -> Vec<u8> {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c.is_ascii_alphanumeric() { c } else { '_' }
            })
            .take(max)
            .collect()
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, e),
        _ => (name, ""),
    };
    let stem = clean(stem, 8);
    let ext = clean(ext, 3);
    let mut n = 0u32;
    loop {
        let candidate = if n == 0 {
            stem.clone()
        } else {
            let suffix = n.to_string();
            format!("{}~{suffix}", &stem[..stem.len().min(8 - suffix.len() - 1)])
        };
        let full = format!("{candidate}.{ext};1").into_bytes();
        if !used.contains(&full) {
            return full;
        }
        n += 1;
    }
}

/// What [`read_iso`] finds: the volume label and the root directory's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoContents {
    pub volume_label: String,
    /// Names from the Joliet tree when present, else primary names without `;1`.
    pub files: Vec<IsoFile>,
}

impl IsoContents {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.iter().find(|f| f.name == name).map(|f| f.data.as_slice())
    }
}

/// Reads the root directory of an ISO 9660 image (subdirectories are skipped). Used by the
/// simulator to show what a VM would see; tests cross-check it against `isoinfo`.
pub fn read_iso(img: &[u8]) -> Result<IsoContents, IsoError> {
    let sector = |n: usize| -> Result<&[u8], IsoError> {
        img.get(n * SECTOR..(n + 1) * SECTOR)
            .ok_or(IsoError::Malformed("truncated"))
    };
    let mut primary = None;
    let mut joliet = None;
    for n in FIRST_DESCRIPTOR..FIRST_DESCRIPTOR + 32 {
        let d = sector(n)?;
        if &d[1..6] != b"CD001" {
            return Err(IsoError::Malformed("missing CD001 signature"));
        }
        match d[0] {
            1 => primary = Some(d),
            2 if d[88] == b'%' && d[89] == b'/' && matches!(d[90], b'@' | b'C' | b'E') => joliet = Some(d),
            255 => break,
            _ => {}
        }
    }
    let primary = primary.ok_or(IsoError::Malformed("no primary volume descriptor"))?;
    let volume_label = String::from_utf8_lossy(&primary[40..72]).trim_end().to_string();
    let (desc, is_joliet) = match joliet {
        Some(j) => (j, true),
        None => (primary, false),
    };
    let root = &desc[156..190];
    let extent = le_u32(&root[2..6]) as usize;
    let size = le_u32(&root[10..14]) as usize;
    let dir = img
        .get(extent * SECTOR..extent * SECTOR + size)
        .ok_or(IsoError::Malformed("root directory out of range"))?;
    let mut files = Vec::new();
    let mut pos = 0;
    while pos < dir.len() {
        let len = dir[pos] as usize;
        if len == 0 {
            // Padding up to the next sector.
            pos = (pos / SECTOR + 1) * SECTOR;
            continue;
        }
        let rec = dir
            .get(pos..pos + len)
            .ok_or(IsoError::Malformed("directory record out of range"))?;
        if rec.len() < 33 {
            return Err(IsoError::Malformed("short directory record"));
        }
        pos += len;
        let name_len = rec[32] as usize;
        let raw_name = rec
            .get(33..33 + name_len)
            .ok_or(IsoError::Malformed("bad name length"))?;
        if rec[25] & 2 != 0 {
            continue;
        }
        let mut name = if is_joliet {
            let units: Vec<u16> = raw_name
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(raw_name).into_owned()
        };
        if let Some(stripped) = name.strip_suffix(";1") {
            name = stripped.to_string();
        }
        if !is_joliet {
            name = name.trim_end_matches('.').to_string();
        }
        let fext = le_u32(&rec[2..6]) as usize;
        let fsize = le_u32(&rec[10..14]) as usize;
        let data = img
            .get(fext * SECTOR..fext * SECTOR + fsize)
            .ok_or(IsoError::Malformed("file extent out of range"))?;
        files.push(IsoFile::new(name, data));
    }
    Ok(IsoContents { volume_label, files })
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 §1: the user data (join tokens, private keys) never shows in `Debug`.
    #[test]
    fn debug_hides_the_user_data() {
        let seed = NoCloudSeed {
            user_data: b"#cloud-config\nwrite_files: [{content: SECRET-KEY-MATERIAL}]\n".to_vec(),
            ..Default::default()
        };
        let shown = format!("{seed:?}");
        assert!(!shown.contains("SECRET-KEY-MATERIAL"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn round_trip_and_determinism() {
        let seed = NoCloudSeed {
            instance_id: "3f0c-uid".into(),
            hostname: "cp-1".into(),
            user_data: b"#cloud-config\nruncmd: [echo hi]\n".to_vec(),
            network_config: None,
            provider_id: Some("dcs://4a1f".into()),
        };
        let a = seed.to_iso().unwrap();
        assert_eq!(a, seed.to_iso().unwrap());
        assert_eq!(a.len() % SECTOR, 0);
        let c = read_iso(&a).unwrap();
        assert_eq!(c.volume_label, "cidata");
        let mut names: Vec<&str> = c.files.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["meta-data", "network-config", "user-data"]);
        assert_eq!(c.file("user-data").unwrap(), seed.user_data.as_slice());
        assert_eq!(
            c.file("meta-data").unwrap(),
            b"instance-id: \"3f0c-uid\"\nlocal-hostname: cp-1\nprovider-id: \"dcs://4a1f\"\n"
        );
    }

    #[test]
    fn many_and_large_files() {
        let files: Vec<IsoFile> = (0..80)
            .map(|i| IsoFile::new(format!("some-rather-long-file-name-{i:03}.txt"), vec![i as u8; i * 700]))
            .collect();
        let img = build_iso("TEST", &files).unwrap();
        let c = read_iso(&img).unwrap();
        assert_eq!(c.files.len(), 80);
        for f in &files {
            assert_eq!(c.file(&f.name).unwrap(), f.data.as_slice(), "{}", f.name);
        }
    }

    #[test]
    fn primary_names_are_unique_level1() {
        let mut used = Vec::new();
        for n in ["user-data", "user-data2", "user-data.yaml"] {
            let p = primary_name(n, &used);
            assert!(!used.contains(&p));
            used.push(p);
        }
        assert_eq!(used[0], b"USER_DAT.;1");
        assert_eq!(used[1], b"USER_D~1.;1");
        assert_eq!(used[2], b"USER_DAT.YAM;1");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(build_iso("", &[]), Err(IsoError::BadLabel(_))));
        assert!(matches!(
            build_iso("x", &[IsoFile::new("a/b", "")]),
            Err(IsoError::BadName(_))
        ));
        assert!(matches!(
            build_iso("x", &[IsoFile::new("a", ""), IsoFile::new("a", "")]),
            Err(IsoError::Duplicate(_))
        ));
        assert!(read_iso(&[0u8; 100]).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(yaml_scalar("cp-1"), "cp-1");
        assert_eq!(yaml_scalar("1234"), "\"1234\"");
        assert_eq!(yaml_scalar("a: b"), "\"a: b\"");
    }
}
