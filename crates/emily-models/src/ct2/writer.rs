//! Writing CTranslate2 `model.bin` files (binary version 6), and an int8
//! copy of a float Whisper model directory quantized as CTranslate2's
//! converter does it (`int8_float16` / `int8_float32`).

use std::io::Write;
use std::path::Path;

use super::model_bin::{read_model_bin, MAX_BINARY_VERSION};
use super::quantized::quantize_int8;
use super::Ct2Error;
use crate::weights::{DType, TensorRecord};

/// Writes `variables` (name, record; written in the order given) and
/// `aliases` (alias, target) as a `model.bin` of `spec_name` / `revision`
/// (the layout of [`super::model_bin`]).
pub fn write_model_bin(
    path: &Path,
    spec_name: &str,
    revision: u32,
    variables: &[(String, TensorRecord)],
    aliases: &[(String, String)],
) -> Result<(), Ct2Error> {
    let io_err = |source| Ct2Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_big = |what: &str| Ct2Error::Malformed {
        path: path.to_path_buf(),
        offset: 0,
        reason: format!("{what} does not fit the model.bin format"),
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io_err)?);
    let mut bytes: Vec<u8> = Vec::new();
    let string = |buf: &mut Vec<u8>, s: &str| -> Result<(), Ct2Error> {
        let len = u16::try_from(s.len() + 1).map_err(|_| too_big(s))?;
        buf.extend(len.to_le_bytes());
        buf.extend(s.as_bytes());
        buf.push(0);
        Ok(())
    };
    bytes.extend(MAX_BINARY_VERSION.to_le_bytes());
    string(&mut bytes, spec_name)?;
    bytes.extend(revision.to_le_bytes());
    let count = u32::try_from(variables.len()).map_err(|_| too_big("the variable count"))?;
    bytes.extend(count.to_le_bytes());
    out.write_all(&bytes).map_err(io_err)?;
    for (name, record) in variables {
        bytes.clear();
        string(&mut bytes, name)?;
        let rank = u8::try_from(record.shape().len()).map_err(|_| too_big(name))?;
        bytes.push(rank);
        for &d in record.shape() {
            bytes.extend(u32::try_from(d).map_err(|_| too_big(name))?.to_le_bytes());
        }
        bytes.push(record.dtype().ct2_code());
        let len = u32::try_from(record.bytes().len()).map_err(|_| too_big(name))?;
        bytes.extend(len.to_le_bytes());
        out.write_all(&bytes).map_err(io_err)?;
        out.write_all(record.bytes()).map_err(io_err)?;
    }
    bytes.clear();
    let count = u32::try_from(aliases.len()).map_err(|_| too_big("the alias count"))?;
    bytes.extend(count.to_le_bytes());
    for (alias, target) in aliases {
        string(&mut bytes, alias)?;
        string(&mut bytes, target)?;
    }
    out.write_all(&bytes).map_err(io_err)?;
    out.flush().map_err(io_err)
}

/// Whether CTranslate2's converter quantizes the Whisper variable `name` of
/// `rank`: the weights of linear layers, convolutions and the embedding.
fn quantizable(name: &str, rank: usize) -> bool {
    rank >= 2 && name.ends_with("/weight")
}

/// Writes `dest/model.bin`: the float CTranslate2 Whisper model `src/model.bin`
/// with every linear, convolution and embedding weight quantized to int8 with
/// per-row scales as CTranslate2's converter does ([`quantize_int8`]), the
/// other tensors unchanged (so an f16 model becomes `int8_float16`), variables
/// in name order and the aliases kept. Copies `config.json`,
/// `tokenizer.json` and `vocabulary.txt` when present. Returns the number of
/// quantized variables.
pub fn write_int8_model(src: &Path, dest: &Path) -> Result<usize, Ct2Error> {
    let bin = read_model_bin(&src.join("model.bin"))?;
    let alias_names: Vec<&str> = bin.aliases.iter().map(|(a, _)| a.as_str()).collect();
    let mut variables = Vec::new();
    let mut count = 0;
    for (name, record) in bin.variables.iter() {
        if alias_names.contains(&name) {
            continue;
        }
        if !(record.dtype().is_float() && quantizable(name, record.shape().len())) {
            variables.push((name.to_string(), record.clone()));
            continue;
        }
        let rows = record.shape()[0];
        let (codes, scales) = quantize_int8(&record.to_f32_vec(), rows);
        let codes = codes.iter().map(|&c| c as u8).collect();
        variables.push((
            name.to_string(),
            TensorRecord::from_bytes(name, record.shape().to_vec(), DType::I8, codes)?,
        ));
        let scale_name = format!("{name}_scale");
        let scale_bytes = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        variables.push((
            scale_name.clone(),
            TensorRecord::from_bytes(&scale_name, vec![rows], DType::F32, scale_bytes)?,
        ));
        count += 1;
    }
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    std::fs::create_dir_all(dest).map_err(|source| Ct2Error::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    write_model_bin(
        &dest.join("model.bin"),
        &bin.spec_name,
        bin.spec_revision,
        &variables,
        &bin.aliases,
    )?;
    for f in ["config.json", "tokenizer.json", "vocabulary.txt"] {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), dest.join(f)).map_err(|source| Ct2Error::Io {
                path: dest.join(f),
                source,
            })?;
        }
    }
    Ok(count)
}
