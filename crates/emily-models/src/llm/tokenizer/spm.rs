//! SentencePiece-style BPE (Gemma, Llama 2) straight from the vocabulary, as
//! llama.cpp runs it: the text's characters are symbols; the adjacent pair
//! whose concatenation is a normal (or user-defined) token with the highest
//! score merges first (the leftmost among equal scores), until no pair is a
//! token; a character that is no token falls back to its UTF-8 byte tokens
//! (`<0xE2>`), else to the unknown token. Control and user-defined tokens
//! written in the text are matched whole (leftmost, then longest) first.
//!
//! No merge table is built: a pair is looked up by its text in the
//! vocabulary's sorted index, which for Gemma's 262,144 tokens saves the
//! half-million merges (and the two string maps) a `tokenizers` BPE model
//! would hold — about 60 MB of resident memory.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::{GgufVocab, TokenType};

/// Whitespace as SentencePiece writes it.
const SPACE: &str = "\u{2581}";

/// No neighbour.
const NONE: usize = usize::MAX;

/// The encoder and decoder state of a SentencePiece vocabulary (the token
/// texts, types and scores stay in the [`GgufVocab`] passed to each call).
#[derive(Clone, Debug)]
pub(crate) struct Spm {
    /// The token of each byte value (`<0x41>`), if the vocabulary has it.
    bytes: [Option<u32>; 256],
    /// Control and user-defined tokens by their first byte, longest first.
    specials: Vec<Vec<u32>>,
}

/// A symbol of the text being merged: a byte range of the normalised text.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
    /// Whether its text is a token (merged symbols always are).
    known: bool,
}

/// A candidate merge of two adjacent symbols.
#[derive(Clone, Copy, Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

impl Spm {
    /// The tables for `vocab` (which must have scores).
    pub(crate) fn new(vocab: &GgufVocab) -> Result<Spm, String> {
        if vocab.scores.len() != vocab.len() {
            return Err("a SentencePiece vocabulary needs tokenizer.ggml.scores".into());
        }
        let mut bytes = [None; 256];
        for (b, slot) in bytes.iter_mut().enumerate() {
            *slot = vocab.tokens.id(&format!("<0x{b:02X}>"));
        }
        let mut specials = vec![Vec::new(); 256];
        for (id, (t, ty)) in vocab.tokens.iter().zip(&vocab.types).enumerate() {
            if matches!(ty, TokenType::Control | TokenType::UserDefined) && !t.is_empty() {
                specials[t.as_bytes()[0] as usize].push(id as u32);
            }
        }
        for list in &mut specials {
            let len = |id: u32| vocab.tokens.get(id).map_or(0, str::len);
            list.sort_by(|&a, &b| len(b).cmp(&len(a)).then(a.cmp(&b)));
        }
        Ok(Spm { bytes, specials })
    }

    /// The special token starting at byte `at` of `text` (longest first).
    fn special_at(&self, vocab: &GgufVocab, text: &str, at: usize) -> Option<(u32, usize)> {
        let rest = &text[at..];
        self.specials[rest.as_bytes()[0] as usize]
            .iter()
            .find_map(|&id| {
                let t = vocab.tokens.get(id)?;
                rest.starts_with(t).then_some((id, t.len()))
            })
    }

    /// The token ids of `text` (no BOS).
    pub(crate) fn encode(&self, vocab: &GgufVocab, text: &str) -> Result<Vec<u32>, String> {
        let mut out = Vec::new();
        let (mut plain, mut at) = (0, 0);
        while at < text.len() {
            if let Some((id, len)) = self.special_at(vocab, text, at) {
                self.encode_plain(vocab, &text[plain..at], &mut out)?;
                out.push(id);
                at += len;
                plain = at;
            } else {
                at += text[at..].chars().next().map_or(1, char::len_utf8);
            }
        }
        self.encode_plain(vocab, &text[plain..], &mut out)?;
        Ok(out)
    }

    /// Text without special tokens: normalise, merge, emit.
    fn encode_plain(
        &self,
        vocab: &GgufVocab,
        text: &str,
        out: &mut Vec<u32>,
    ) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let mut norm = String::with_capacity(text.len() + 8);
        if vocab.add_space_prefix {
            norm.push_str(SPACE);
        }
        for c in text.chars() {
            match c {
                ' ' => norm.push_str(SPACE),
                c => norm.push(c),
            }
        }
        let mut syms: Vec<Symbol> = norm
            .char_indices()
            .enumerate()
            .map(|(i, (start, c))| Symbol {
                start,
                len: c.len_utf8(),
                prev: if i == 0 { NONE } else { i - 1 },
                next: i + 1,
                known: vocab
                    .tokens
                    .id(&norm[start..start + c.len_utf8()])
                    .is_some(),
            })
            .collect();
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }
        let mut heap = BinaryHeap::new();
        let bigram = |syms: &[Symbol], left: usize, right: usize| -> Option<Bigram> {
            if left == NONE || right == NONE || !syms[left].known || !syms[right].known {
                return None;
            }
            let len = syms[left].len + syms[right].len;
            let id = vocab
                .tokens
                .id(&norm[syms[left].start..syms[left].start + len])?;
            let ty = vocab.types[id as usize];
            if ty != TokenType::Normal && ty != TokenType::UserDefined {
                return None;
            }
            Some(Bigram {
                score: vocab.scores[id as usize],
                left,
                right,
                len,
            })
        };
        for i in 1..syms.len() {
            heap.extend(bigram(&syms, i - 1, i));
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (b.left, b.right);
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.len {
                continue; // one side has merged since
            }
            syms[l].len = b.len;
            syms[r].len = 0;
            let next = syms[r].next;
            syms[l].next = next;
            if next != NONE {
                syms[next].prev = l;
            }
            heap.extend(bigram(&syms, syms[l].prev, l));
            heap.extend(bigram(&syms, l, syms[l].next));
        }
        let mut i = 0;
        let mut last_unk = false;
        while i != NONE {
            let s = syms[i];
            let piece = &norm[s.start..s.start + s.len];
            if let Some(id) = vocab.tokens.id(piece) {
                out.push(id);
                last_unk = false;
            } else if let Some(ids) = piece
                .bytes()
                .map(|b| self.bytes[b as usize])
                .collect::<Option<Vec<u32>>>()
            {
                out.extend(ids);
                last_unk = false;
            } else {
                let unk = vocab.unk.ok_or_else(|| {
                    format!("`{piece}` has no token, no byte tokens and there is no unknown token")
                })?;
                if !last_unk {
                    out.push(unk);
                }
                last_unk = true;
            }
            i = s.next;
        }
        Ok(())
    }

    /// The text of `ids`: `▁` back to spaces, byte tokens gathered into
    /// UTF-8 (a run that is not valid UTF-8 gives one U+FFFD per byte), one
    /// leading space dropped when encoding adds one; with `skip_special`,
    /// control tokens are left out.
    pub(crate) fn decode(
        &self,
        vocab: &GgufVocab,
        ids: &[u32],
        skip_special: bool,
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut bytes = Vec::new();
        let flush = |bytes: &mut Vec<u8>, out: &mut String| {
            match std::str::from_utf8(bytes) {
                Ok(s) => out.push_str(s),
                Err(_) => out.extend(std::iter::repeat_n('\u{FFFD}', bytes.len())),
            }
            bytes.clear();
        };
        for &id in ids {
            let t = vocab.tokens.get(id).ok_or_else(|| {
                format!(
                    "token id {id} is outside the {}-token vocabulary",
                    vocab.len()
                )
            })?;
            let ty = vocab.types[id as usize];
            if skip_special && ty == TokenType::Control {
                continue;
            }
            if let Some(b) = byte_value(t).filter(|&b| self.bytes[b as usize] == Some(id)) {
                bytes.push(b);
                continue;
            }
            flush(&mut bytes, &mut out);
            out.push_str(&t.replace(SPACE, " "));
        }
        flush(&mut bytes, &mut out);
        if vocab.add_space_prefix && out.starts_with(' ') {
            out.remove(0);
        }
        Ok(out)
    }
}

/// The byte a `<0xAB>` token stands for.
fn byte_value(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::table::TokenTable;
    use super::super::vocab::{GgufVocab, TokenType};
    use super::{Spm, SPACE};

    /// A vocabulary over `a b c é ▁` with random scores: every single
    /// character but `c`, random 2–4 character pieces, byte tokens, two
    /// control tokens and an unknown token.
    fn vocab(rng: &mut StdRng, space_prefix: bool) -> GgufVocab {
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "<ctl>".into()];
        let mut types = vec![TokenType::Unknown, TokenType::Control, TokenType::Control];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(TokenType::Byte);
        }
        let alphabet = ["a", "b", "é", SPACE];
        for a in alphabet {
            tokens.push(a.into());
            types.push(TokenType::Normal);
        }
        let letters = ["a", "b", "c", "é", SPACE];
        while tokens.len() < 259 + 4 + 60 {
            let n = rng.gen_range(2..=4);
            let t: String = (0..n).map(|_| letters[rng.gen_range(0..5)]).collect();
            if !tokens.contains(&t) {
                tokens.push(t);
                types.push(if rng.gen_bool(0.1) {
                    TokenType::Unused
                } else {
                    TokenType::Normal
                });
            }
        }
        let scores = (0..tokens.len())
            .map(|_| rng.gen_range(-8..0) as f32)
            .collect();
        GgufVocab {
            model: "llama".into(),
            pre: None,
            tokens: TokenTable::new(&tokens).unwrap(),
            types,
            scores,
            merges: Vec::new(),
            bos: Some(1),
            eos: None,
            eot: None,
            unk: Some(0),
            pad: None,
            add_bos: true,
            add_space_prefix: space_prefix,
            chat_template: None,
        }
    }

    /// The rule done the slow way: rescan every adjacent pair per merge.
    fn reference(v: &GgufVocab, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for (i, part) in text.split("<ctl>").enumerate() {
            if i > 0 {
                out.push(2);
            }
            if part.is_empty() {
                continue;
            }
            let prefix = if v.add_space_prefix { SPACE } else { "" };
            let norm = format!("{prefix}{}", part.replace(' ', SPACE));
            let mut syms: Vec<String> = norm.chars().map(String::from).collect();
            loop {
                let mut best: Option<(f32, usize)> = None;
                for i in 0..syms.len().saturating_sub(1) {
                    let known = |s: &str| v.tokens.id(s).is_some();
                    if !known(&syms[i]) || !known(&syms[i + 1]) {
                        continue;
                    }
                    let Some(id) = v.tokens.id(&format!("{}{}", syms[i], syms[i + 1])) else {
                        continue;
                    };
                    if v.types[id as usize] != TokenType::Normal {
                        continue;
                    }
                    let s = v.scores[id as usize];
                    if best.is_none_or(|(b, _)| s > b) {
                        best = Some((s, i));
                    }
                }
                let Some((_, i)) = best else { break };
                let right = syms.remove(i + 1);
                syms[i].push_str(&right);
            }
            for s in syms {
                match v.tokens.id(&s) {
                    Some(id) => out.push(id),
                    None => out.extend(s.bytes().map(|b| 3 + b as u32)),
                }
            }
        }
        out
    }

    #[test]
    fn merges_like_the_rescanning_reference_and_round_trips() {
        let mut rng = StdRng::seed_from_u64(9);
        for round in 0..40 {
            let v = vocab(&mut rng, round % 2 == 1);
            let spm = Spm::new(&v).unwrap();
            for len in [1, 2, 7, 30] {
                let pieces = ["a", "b", "c", "é", " ", "<ctl>", "ж"];
                let text: String = (0..len).map(|_| pieces[rng.gen_range(0..7)]).collect();
                let ids = spm.encode(&v, &text).unwrap();
                assert_eq!(ids, reference(&v, &text), "{text:?}");
                // Decoding gives the text back, except that with a space
                // prefix every plain run after a control token gained one.
                if !(v.add_space_prefix && text.contains("<ctl>")) {
                    let back = spm.decode(&v, &ids, false).unwrap();
                    assert_eq!(back, text, "{ids:?}");
                }
                let plain = spm.decode(&v, &ids, true).unwrap();
                assert!(!plain.contains("<ctl>"));
            }
        }
    }

    #[test]
    fn falls_back_to_bytes_then_to_one_unknown_token() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut v = vocab(&mut rng, false);
        let spm = Spm::new(&v).unwrap();
        // `ж` is no token: its two UTF-8 bytes.
        assert_eq!(spm.encode(&v, "ж").unwrap(), vec![3 + 0xD0, 3 + 0xB6]);
        // Half a character decodes to a replacement character.
        assert_eq!(spm.decode(&v, &[3 + 0xD0], false).unwrap(), "\u{FFFD}");
        assert!(spm.decode(&v, &[99_999], false).is_err());
        // Without byte tokens, a run of unknown characters is one `<unk>`.
        let mut tokens: Vec<String> = v.tokens.iter().map(String::from).collect();
        for b in 0..=255usize {
            tokens[3 + b] = format!("byte{b}");
        }
        v.tokens = TokenTable::new(&tokens).unwrap();
        let spm = Spm::new(&v).unwrap();
        let ids = spm.encode(&v, "жж").unwrap();
        assert_eq!(ids, vec![0]);
        v.unk = None;
        assert!(spm.encode(&v, "ж").unwrap_err().contains("ж"));
    }
}
