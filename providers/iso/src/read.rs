//! The reader a (simulated) guest uses to see what its drive holds: the volume label and every
//! file, subdirectories included (`ignition/config.ign`). Names come from the Joliet tree when
//! there is one, as Linux's `isofs` shows them.

use crate::{FIRST_DESCRIPTOR, IsoError, IsoFile, SECTOR};

/// Deeper trees than this are refused: ECMA-119 allows 8 levels, and a loop of directory
/// records pointing at each other must not recurse forever.
const MAX_DEPTH: usize = 8;

/// What [`read_iso`] finds: the volume label and the files, by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoContents {
    pub volume_label: String,
    /// Paths (`user-data`, `ignition/config.ign`) from the Joliet tree when present, else
    /// primary names without `;1`.
    pub files: Vec<IsoFile>,
}

impl IsoContents {
    /// The file at `path` (`/`-separated, no leading slash).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.iter().find(|f| f.name == path).map(|f| f.data.as_slice())
    }
}

/// Reads an ISO 9660 image. Tests cross-check it against `isoinfo` and `xorriso`.
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
    let mut reader = Reader {
        img,
        is_joliet,
        files: Vec::new(),
    };
    reader.directory(le_u32(&root[2..6]) as usize, le_u32(&root[10..14]) as usize, "", 0)?;
    Ok(IsoContents {
        volume_label,
        files: reader.files,
    })
}

struct Reader<'a> {
    img: &'a [u8],
    is_joliet: bool,
    files: Vec<IsoFile>,
}

impl Reader<'_> {
    fn directory(&mut self, extent: usize, size: usize, prefix: &str, depth: usize) -> Result<(), IsoError> {
        if depth > MAX_DEPTH {
            return Err(IsoError::Malformed("directories nested too deep"));
        }
        let dir = self
            .img
            .get(extent * SECTOR..extent * SECTOR + size)
            .ok_or(IsoError::Malformed("directory out of range"))?;
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
            let (child_extent, child_size) = (le_u32(&rec[2..6]) as usize, le_u32(&rec[10..14]) as usize);
            let is_dir = rec[25] & 2 != 0;
            if is_dir {
                // "." and "..".
                if matches!(raw_name, [0] | [1]) {
                    continue;
                }
                let path = format!("{prefix}{}", self.name(raw_name, true));
                self.directory(child_extent, child_size, &format!("{path}/"), depth + 1)?;
                continue;
            }
            let data = self
                .img
                .get(child_extent * SECTOR..child_extent * SECTOR + child_size)
                .ok_or(IsoError::Malformed("file extent out of range"))?;
            self.files
                .push(IsoFile::new(format!("{prefix}{}", self.name(raw_name, false)), data));
        }
        Ok(())
    }

    fn name(&self, raw: &[u8], is_dir: bool) -> String {
        let mut name = if self.is_joliet {
            let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(raw).into_owned()
        };
        if let Some(stripped) = name.strip_suffix(";1") {
            name = stripped.to_string();
        }
        if !self.is_joliet && !is_dir {
            name = name.trim_end_matches('.').to_string();
        }
        name
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
