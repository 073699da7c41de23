//! Parser for CTranslate2's `model.bin` (binary versions 5 and 6).
//!
//! # Layout (little endian)
//!
//! ```text
//! u32  binary_version                  6 for the Whisper packages; < 5 is refused
//! str  spec_name                       "WhisperSpec"
//! u32  spec_revision                   3
//! u32  num_variables
//! repeat num_variables:
//!     str  name                        e.g. "encoder/layer_0/self_attention/linear_0/weight"
//!     u8   rank
//!     u32  dims[rank]                  row-major shape (rank 0: a scalar)
//!     u8   dtype                       0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16
//!     u32  num_bytes                   must equal prod(dims) * sizeof(dtype)
//!     u8   data[num_bytes]
//! u32  num_aliases
//! repeat num_aliases:
//!     str  alias                       e.g. "decoder/projection/weight"
//!     str  target                      e.g. "decoder/embeddings/weight"
//! ```
//!
//! `str` is a `u16` byte length that *includes* a trailing NUL, then the UTF-8 bytes
//! and the NUL. The file must be consumed exactly: trailing bytes are an error.
//!
//! The file is memory-mapped and every length is checked against the bytes that
//! remain before anything is allocated or sliced, so a hostile file can at worst
//! produce an error. Tensor data is not copied: records borrow from the mapping.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::Ct2Error;
use crate::weights::{byte_size, DType, TensorRecord, Weights};

/// The oldest binary version this parser reads.
pub const MIN_BINARY_VERSION: u32 = 5;
/// The newest binary version this parser reads.
pub const MAX_BINARY_VERSION: u32 = 6;

/// The parsed contents of a `model.bin`.
#[derive(Clone, Debug)]
pub struct Ct2ModelBin {
    /// Format version from the header.
    pub binary_version: u32,
    /// Model specification name, e.g. `WhisperSpec`.
    pub spec_name: String,
    /// Model specification revision.
    pub spec_revision: u32,
    /// Every variable under its CTranslate2 name, aliases included (an alias shares
    /// its target's bytes).
    pub variables: Weights,
    /// `(alias, target)` pairs as stored in the file.
    pub aliases: Vec<(String, String)>,
}

/// Memory-map and parse the `model.bin` at `path`.
pub fn read_model_bin(path: &Path) -> Result<Ct2ModelBin, Ct2Error> {
    let io_err = |source| Ct2Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(Ct2Error::Malformed {
            path: path.to_path_buf(),
            offset: 0,
            reason: "the file is empty".into(),
        });
    }
    // SAFETY: the mapping is read-only; a file truncated by another process while
    // mapped is outside what any loader can defend against (same as every mmap user).
    let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
    parse(Arc::new(map), path)
}

/// A bounds-checked cursor over the mapped bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, reason: String) -> Ct2Error {
        Ct2Error::Malformed {
            path: self.path.to_path_buf(),
            offset: self.pos,
            reason,
        }
    }

    /// Reserve `n` bytes for `what`, returning their range.
    fn take(&mut self, n: usize, what: &str) -> Result<Range<usize>, Ct2Error> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(Ct2Error::Truncated {
                path: self.path.to_path_buf(),
                offset: self.pos,
                what: what.to_string(),
                needed: n,
                left,
            });
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        let r = self.take(1, what)?;
        Ok(self.bytes[r.start])
    }

    fn u16(&mut self, what: &str) -> Result<u16, Ct2Error> {
        let r = self.take(2, what)?;
        Ok(u16::from_le_bytes(
            self.bytes[r].try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        let r = self.take(4, what)?;
        Ok(u32::from_le_bytes(
            self.bytes[r].try_into().expect("4 bytes"),
        ))
    }

    /// A length-prefixed, NUL-terminated UTF-8 string.
    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let start = self.pos;
        let len = self.u16(what)? as usize;
        let r = self.take(len, what)?;
        let raw = &self.bytes[r];
        let Some((&0, text)) = raw.split_last() else {
            self.pos = start;
            return Err(self.malformed(format!("{what} is not NUL-terminated")));
        };
        String::from_utf8(text.to_vec()).map_err(|_| {
            self.pos = start;
            self.malformed(format!("{what} is not valid UTF-8"))
        })
    }
}

fn parse(map: Arc<Mmap>, path: &Path) -> Result<Ct2ModelBin, Ct2Error> {
    let mut cur = Cursor {
        bytes: &map[..],
        pos: 0,
        path,
    };
    let binary_version = cur.u32("the binary version")?;
    if !(MIN_BINARY_VERSION..=MAX_BINARY_VERSION).contains(&binary_version) {
        return Err(Ct2Error::UnsupportedVersion {
            path: path.to_path_buf(),
            version: binary_version,
        });
    }
    let spec_name = cur.string("the spec name")?;
    let spec_revision = cur.u32("the spec revision")?;
    let num_variables = cur.u32("the variable count")?;

    let mut variables = Weights::new(path);
    for index in 0..num_variables {
        let name = cur.string(&format!("the name of variable {index}"))?;
        let (shape, dtype, range) = read_variable_body(&mut cur, &name)?;
        if variables.contains(&name) {
            return Err(cur.malformed(format!("variable `{name}` appears twice")));
        }
        variables.insert(name, TensorRecord::mapped(map.clone(), range, shape, dtype));
    }

    let num_aliases = cur.u32("the alias count")?;
    let mut aliases = Vec::new();
    for index in 0..num_aliases {
        let alias = cur.string(&format!("alias {index}"))?;
        let target = cur.string(&format!("the target of alias `{alias}`"))?;
        aliases.push((alias, target));
    }
    if cur.pos != map.len() {
        return Err(cur.malformed(format!(
            "{} unexpected bytes after the alias table",
            map.len() - cur.pos
        )));
    }
    resolve_aliases(&mut variables, &aliases, path)?;
    Ok(Ct2ModelBin {
        binary_version,
        spec_name,
        spec_revision,
        variables,
        aliases,
    })
}

/// Rank, dims, dtype and data of one variable; every count is checked before use.
fn read_variable_body(
    cur: &mut Cursor<'_>,
    name: &str,
) -> Result<(Vec<usize>, DType, Range<usize>), Ct2Error> {
    let rank = cur.u8(&format!("the rank of `{name}`"))? as usize;
    // The dims must fit in the file before the Vec is sized from `rank`.
    let dims_range = cur.take(rank * 4, &format!("the dims of `{name}`"))?;
    let shape: Vec<usize> = cur.bytes[dims_range]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    let code = cur.u8(&format!("the dtype of `{name}`"))?;
    let dtype = DType::from_ct2_code(code)
        .ok_or_else(|| cur.malformed(format!("variable `{name}` has unknown dtype code {code}")))?;
    let num_bytes = cur.u32(&format!("the byte count of `{name}`"))? as usize;
    if byte_size(&shape, dtype) != Some(num_bytes) {
        return Err(cur.malformed(format!(
            "variable `{name}` claims {num_bytes} bytes for shape {shape:?} of {dtype}"
        )));
    }
    let range = cur.take(num_bytes, &format!("the data of `{name}`"))?;
    Ok((shape, dtype, range))
}

/// Make every alias name a second handle on its target's record.
fn resolve_aliases(
    variables: &mut Weights,
    aliases: &[(String, String)],
    path: &Path,
) -> Result<(), Ct2Error> {
    for (alias, target) in aliases {
        // Follow alias chains (an alias of an alias), bounded by the alias count.
        let mut name = target;
        let mut hops = 0;
        while !variables.contains(name) {
            match aliases.iter().find(|(a, _)| a == name) {
                Some((_, next)) if hops < aliases.len() => {
                    name = next;
                    hops += 1;
                }
                _ => {
                    return Err(Ct2Error::BadAlias {
                        path: PathBuf::from(path),
                        alias: alias.clone(),
                        target: target.clone(),
                    })
                }
            }
        }
        let record = variables.get(name)?.clone();
        variables.insert(alias.clone(), record);
    }
    Ok(())
}
