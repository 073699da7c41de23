//! Inspection: `(node, op)` pairs, op frequencies, and a readable summary.

use std::collections::BTreeMap;
use std::fmt;

use crate::graph::Model;
use crate::layers;

impl Model {
    /// `(node name, op label)` for every node in order. The label is the op
    /// name, `fast.`-prefixed when the node runs its fused implementation
    /// (`"layer_norm"` vs `"fast.layer_norm"`).
    pub fn properties(&self) -> Vec<(String, String)> {
        self.nodes()
            .iter()
            .map(|n| (n.name().to_string(), n.label().to_string()))
            .collect()
    }

    /// How many nodes carry each op label, most frequent first (ties by name).
    pub fn op_frequencies(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for n in self.nodes() {
            *counts.entry(n.label()).or_default() += 1;
        }
        let mut v: Vec<(String, usize)> = counts
            .into_iter()
            .map(|(k, c)| (k.to_string(), c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

/// Thousands separators: `12345` → `"12,345"`.
fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shape_str(s: &[Option<usize>]) -> String {
    let dims: Vec<String> = s
        .iter()
        .map(|d| d.map_or("?".into(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

impl fmt::Display for Model {
    /// A table of nodes (index, name, op label, output shape where known —
    /// `?` for free dims —, parameter count, inputs), the outputs, and the
    /// op frequencies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let specs = self.param_specs();
        let total: usize = specs.iter().map(|(_, s)| s.numel()).sum();
        writeln!(
            f,
            "Model: {} nodes, {} inputs, {} outputs, {} parameters in {} tensors",
            self.len(),
            self.inputs().len(),
            self.outputs().len(),
            grouped(total),
            specs.len()
        )?;
        let shapes = self.probe_shapes();
        let rows: Vec<[String; 6]> = self
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let params: usize = layers::param_specs(n.op()).iter().map(|s| s.numel()).sum();
                let shape = shapes
                    .as_ref()
                    .map_or("-".to_string(), |s| shape_str(&s[i]));
                let inputs = if n.inputs().is_empty() {
                    "-".to_string()
                } else {
                    n.inputs().join(", ")
                };
                [
                    i.to_string(),
                    n.name().to_string(),
                    n.label().to_string(),
                    shape,
                    grouped(params),
                    inputs,
                ]
            })
            .collect();
        let header = ["#", "node", "op", "shape", "params", "inputs"];
        let mut width = header.map(str::len);
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, r: &[String; 6]| {
            writeln!(
                f,
                "  {:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:>w4$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3],
                w4 = width[4]
            )
        };
        line(f, &header.map(String::from))?;
        for r in &rows {
            line(f, r)?;
        }
        writeln!(f, "outputs: {}", self.outputs().join(", "))?;
        let freq: Vec<String> = self
            .op_frequencies()
            .iter()
            .map(|(op, c)| format!("{op} {c}"))
            .collect();
        write!(f, "op frequencies: {}", freq.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::grouped(0), "0");
        assert_eq!(super::grouped(999), "999");
        assert_eq!(super::grouped(1000), "1,000");
        assert_eq!(super::grouped(1234567), "1,234,567");
    }
}
