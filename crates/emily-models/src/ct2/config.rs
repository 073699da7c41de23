//! CTranslate2's Whisper `config.json`: decoding settings stored next to `model.bin`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Ct2Error;

/// The fields of a CTranslate2 Whisper `config.json` that decoding needs.
/// Unknown fields are ignored; missing ones default to empty lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ct2Config {
    /// `(decoder layer, head)` pairs whose cross-attention aligns with time
    /// (used for word timestamps).
    #[serde(default)]
    pub alignment_heads: Vec<(usize, usize)>,
    /// Token ids of the language tokens, as CTranslate2 recorded them.
    #[serde(default)]
    pub lang_ids: Vec<u32>,
    /// Tokens never to be generated (the model's suppress-tokens list).
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    /// Tokens not to be generated at the first decoding step (`[220, eot]`).
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
}

impl Ct2Config {
    /// Read and parse `path` (a CTranslate2 `config.json`).
    pub fn from_file(path: &Path) -> Result<Self, Ct2Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Ct2Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Ct2Error::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_packaged_fields() {
        let c: Ct2Config = serde_json::from_str(
            r#"{"alignment_heads": [[1, 0], [2, 5]], "lang_ids": [50259],
                "suppress_ids": [1, 2], "suppress_ids_begin": [220, 50256], "other": 3}"#,
        )
        .unwrap();
        assert_eq!(c.alignment_heads, vec![(1, 0), (2, 5)]);
        assert_eq!(c.suppress_ids_begin, vec![220, 50256]);
    }
}
