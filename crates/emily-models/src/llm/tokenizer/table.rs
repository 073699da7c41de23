//! A vocabulary's token strings in one buffer: the texts end to end, an end
//! offset per id, and the ids sorted by text for lookups. Gemma's 262,144
//! tokens take about 4.5 MB this way, where a `Vec<String>` (a heap block
//! per token) plus a `HashMap<String, u32>` took about 40 MB.

/// Token strings by id, with a text → id index (the first id wins when a
/// text repeats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenTable {
    text: String,
    ends: Vec<u32>,
    sorted: Vec<u32>,
}

impl TokenTable {
    /// The table of `tokens` (id = position); `None` if their total length
    /// or count does not fit 32 bits.
    pub fn new<S: AsRef<str>>(tokens: &[S]) -> Option<TokenTable> {
        let total = tokens
            .iter()
            .try_fold(0usize, |n, t| n.checked_add(t.as_ref().len()))?;
        u32::try_from(total).ok()?;
        u32::try_from(tokens.len()).ok()?;
        let mut text = String::with_capacity(total);
        let mut ends = Vec::with_capacity(tokens.len());
        for t in tokens {
            text.push_str(t.as_ref());
            ends.push(text.len() as u32);
        }
        let mut table = TokenTable {
            text,
            ends,
            sorted: Vec::new(),
        };
        let mut sorted: Vec<u32> = (0..tokens.len() as u32).collect();
        // Stable: among equal texts the lowest id comes first.
        sorted.sort_by(|&a, &b| table.text_of(a).cmp(table.text_of(b)));
        sorted.dedup_by(|b, a| table.text_of(*a) == table.text_of(*b));
        table.sorted = sorted;
        Some(table)
    }

    fn text_of(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The text of token `id`.
    pub fn get(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.len()).then(|| self.text_of(id))
    }

    /// The (lowest) id whose text is `piece`.
    pub fn id(&self, piece: &str) -> Option<u32> {
        self.sorted
            .binary_search_by(|&id| self.text_of(id).cmp(piece))
            .ok()
            .map(|i| self.sorted[i])
    }

    /// Every token's text in id order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len() as u32).map(|id| self.text_of(id))
    }
}

#[cfg(test)]
mod tests {
    use super::TokenTable;

    #[test]
    fn looks_up_texts_and_ids() {
        let toks = ["b", "", "ab", "a", "ab", "▁the"];
        let t = TokenTable::new(&toks).unwrap();
        assert_eq!(t.len(), 6);
        for (i, s) in toks.iter().enumerate() {
            assert_eq!(t.get(i as u32), Some(*s));
        }
        assert_eq!(t.get(6), None);
        assert_eq!(t.id("ab"), Some(2), "the first id of a repeated text");
        assert_eq!(t.id("▁the"), Some(5));
        assert_eq!(t.id(""), Some(1));
        assert_eq!(t.id("abc"), None);
        assert_eq!(t.iter().collect::<Vec<_>>(), toks);
    }
}
