//! Small random-weight GGUF language models written with our GGUF writer,
//! and an independent float64 forward pass over the same weights (plain
//! loops, written from the architectures' definitions) to check the graphs.

use std::collections::HashMap;

use emily_models::gguf::{Array, GgmlType, GgufWriter, Value};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Sizes of a tiny model.
#[derive(Clone, Copy, Debug)]
pub struct Tiny {
    pub arch: &'static str,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub rope_base: f64,
    pub window: Option<usize>,
    pub tied: bool,
}

impl Tiny {
    pub fn qwen3() -> Tiny {
        Tiny {
            arch: "qwen3",
            layers: 2,
            hidden: 40,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            ffn: 56,
            rope_base: 1e6,
            window: None,
            tied: true,
        }
    }

    pub fn llama() -> Tiny {
        Tiny {
            arch: "llama",
            heads: 5,
            kv_heads: 1,
            head_dim: 8,
            rope_base: 1e4,
            tied: false,
            ..Tiny::qwen3()
        }
    }

    pub fn qwen2() -> Tiny {
        Tiny {
            arch: "qwen2",
            head_dim: 10,
            ..Tiny::qwen3()
        }
    }

    /// Six layers: five sliding-window layers (window 3) and a global one.
    pub fn gemma3() -> Tiny {
        Tiny {
            arch: "gemma3",
            layers: 6,
            hidden: 24,
            heads: 2,
            kv_heads: 1,
            head_dim: 12,
            ffn: 32,
            rope_base: 1e6,
            window: Some(3),
            tied: true,
        }
    }

    fn q_out(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_out(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    fn qk_norm(&self) -> bool {
        matches!(self.arch, "qwen3" | "gemma3")
    }
    fn gemma(&self) -> bool {
        self.arch == "gemma3"
    }
    fn local(&self, il: usize) -> Option<usize> {
        self.window.filter(|_| il % 6 < 5)
    }
}

/// GPT-2's byte-to-character map (printable bytes keep their character).
pub fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut map = vec!['\0'; 256];
    for (b, c) in printable.iter().zip(chars) {
        map[*b as usize] = char::from_u32(c).unwrap();
    }
    map
}

/// Vocabulary: 256 byte tokens, four merges, and `<|endoftext|>` (control).
pub fn vocab() -> (Vec<String>, Vec<String>, Vec<i32>) {
    let bytes = byte_chars();
    let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    let sp = bytes[b' ' as usize];
    let merges = vec![
        format!("{sp} t"),
        "h e".to_string(),
        format!("{sp}t he"),
        "a b".to_string(),
    ];
    tokens.extend([
        format!("{sp}t"),
        "he".into(),
        format!("{sp}the"),
        "ab".into(),
    ]);
    tokens.push("<|endoftext|>".into());
    let mut types = vec![1; tokens.len()];
    *types.last_mut().unwrap() = 3;
    (tokens, merges, types)
}

/// The float64 weights by GGUF name (row-major shapes).
pub type Weights = HashMap<String, (Vec<usize>, Vec<f64>)>;

/// Random weights for `t` (norm weights near 1, matrices scaled by 1/√fan-in).
pub fn weights(t: &Tiny, vocab: usize, seed: u64) -> Weights {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = Weights::new();
    let mut mat = |name: String, shape: Vec<usize>, scale: f64, center: f64| {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| center + scale * (rng.gen::<f64>() * 2.0 - 1.0))
            .collect();
        w.insert(name, (shape, v));
    };
    let fan = |n: usize| 1.7 / (n as f64).sqrt();
    mat("token_embd.weight".into(), vec![vocab, t.hidden], 1.0, 0.0);
    if !t.tied {
        mat(
            "output.weight".into(),
            vec![vocab, t.hidden],
            fan(t.hidden),
            0.0,
        );
    }
    mat("output_norm.weight".into(), vec![t.hidden], 0.2, 1.0);
    for il in 0..t.layers {
        let n = |s: &str| format!("blk.{il}.{s}");
        mat(n("attn_norm.weight"), vec![t.hidden], 0.2, 1.0);
        mat(
            n("attn_q.weight"),
            vec![t.q_out(), t.hidden],
            fan(t.hidden),
            0.0,
        );
        mat(
            n("attn_k.weight"),
            vec![t.kv_out(), t.hidden],
            fan(t.hidden),
            0.0,
        );
        mat(
            n("attn_v.weight"),
            vec![t.kv_out(), t.hidden],
            fan(t.hidden),
            0.0,
        );
        mat(
            n("attn_output.weight"),
            vec![t.hidden, t.q_out()],
            fan(t.q_out()),
            0.0,
        );
        if t.arch == "qwen2" {
            mat(n("attn_q.bias"), vec![t.q_out()], 0.3, 0.0);
            mat(n("attn_k.bias"), vec![t.kv_out()], 0.3, 0.0);
            mat(n("attn_v.bias"), vec![t.kv_out()], 0.3, 0.0);
        }
        if t.qk_norm() {
            mat(n("attn_q_norm.weight"), vec![t.head_dim], 0.2, 1.0);
            mat(n("attn_k_norm.weight"), vec![t.head_dim], 0.2, 1.0);
        }
        if t.gemma() {
            mat(n("post_attention_norm.weight"), vec![t.hidden], 0.2, 1.0);
            mat(n("post_ffw_norm.weight"), vec![t.hidden], 0.2, 1.0);
        }
        mat(n("ffn_norm.weight"), vec![t.hidden], 0.2, 1.0);
        mat(
            n("ffn_gate.weight"),
            vec![t.ffn, t.hidden],
            fan(t.hidden),
            0.0,
        );
        mat(
            n("ffn_up.weight"),
            vec![t.ffn, t.hidden],
            fan(t.hidden),
            0.0,
        );
        mat(n("ffn_down.weight"), vec![t.hidden, t.ffn], fan(t.ffn), 0.0);
    }
    w
}

/// A small chat template for the tiny models' files.
pub const TINY_TEMPLATE: &str = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

/// The GGUF file of `t` with weights `w` (stored as f32, or f16 for the
/// matrices when `half` is set).
pub fn gguf(t: &Tiny, w: &Weights, half: bool) -> Vec<u8> {
    gguf_with_template(t, w, half, Some(TINY_TEMPLATE))
}

/// [`gguf`] with the given chat template, or none.
pub fn gguf_with_template(t: &Tiny, w: &Weights, half: bool, template: Option<&str>) -> Vec<u8> {
    let (tokens, merges, types) = vocab();
    let mut g = GgufWriter::new();
    let a = t.arch;
    let u32v = |v: usize| Value::U32(v as u32);
    g.add_metadata("general.architecture", Value::String(a.into()));
    g.add_metadata(&format!("{a}.block_count"), u32v(t.layers));
    g.add_metadata(&format!("{a}.context_length"), u32v(64));
    g.add_metadata(&format!("{a}.embedding_length"), u32v(t.hidden));
    g.add_metadata(&format!("{a}.feed_forward_length"), u32v(t.ffn));
    g.add_metadata(&format!("{a}.attention.head_count"), u32v(t.heads));
    g.add_metadata(&format!("{a}.attention.head_count_kv"), u32v(t.kv_heads));
    g.add_metadata(&format!("{a}.attention.key_length"), u32v(t.head_dim));
    g.add_metadata(&format!("{a}.attention.value_length"), u32v(t.head_dim));
    g.add_metadata(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        Value::F32(1e-6),
    );
    g.add_metadata(
        &format!("{a}.rope.freq_base"),
        Value::F32(t.rope_base as f32),
    );
    if let Some(win) = t.window {
        g.add_metadata(&format!("{a}.attention.sliding_window"), u32v(win));
    }
    g.add_metadata("tokenizer.ggml.model", Value::String("gpt2".into()));
    g.add_metadata("tokenizer.ggml.pre", Value::String("qwen2".into()));
    g.add_metadata(
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(tokens.clone())),
    );
    g.add_metadata("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    g.add_metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    g.add_metadata("tokenizer.ggml.eos_token_id", u32v(tokens.len() - 1));
    if let Some(template) = template {
        g.add_metadata("tokenizer.chat_template", Value::String(template.into()));
    }
    let mut names: Vec<&String> = w.keys().collect();
    names.sort();
    for name in names {
        let (shape, v) = &w[name];
        if half && shape.len() == 2 {
            let bytes = v
                .iter()
                .flat_map(|&x| half::f16::from_f64(x).to_le_bytes())
                .collect();
            g.add_tensor(name, shape, GgmlType::F16, bytes).unwrap();
        } else {
            let bytes = v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect();
            g.add_tensor(name, shape, GgmlType::F32, bytes).unwrap();
        }
    }
    g.to_bytes().unwrap()
}

/// Rounds every weight as the file stores it (f32, or f16 matrices).
pub fn stored(w: &Weights, half: bool) -> Weights {
    w.iter()
        .map(|(k, (s, v))| {
            let v = v
                .iter()
                .map(|&x| {
                    if half && s.len() == 2 {
                        half::f16::from_f64(x).to_f64()
                    } else {
                        x as f32 as f64
                    }
                })
                .collect();
            (k.clone(), (s.clone(), v))
        })
        .collect()
}

fn matvec(w: &[f64], rows: usize, x: &[f64]) -> Vec<f64> {
    let cols = x.len();
    (0..rows)
        .map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum())
        .collect()
}

fn rms_norm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v * r * g).collect()
}

/// Rotates one head vector at position `pos`: pairs `(i, i + d/2)`, or
/// `(2i, 2i + 1)` when `interleaved`.
fn rope(x: &mut [f64], pos: usize, base: f64, interleaved: bool) {
    let d = x.len();
    for i in 0..d / 2 {
        let theta = pos as f64 * base.powf(-2.0 * i as f64 / d as f64);
        let (a, b) = if interleaved {
            (2 * i, 2 * i + 1)
        } else {
            (i, i + d / 2)
        };
        let (xa, xb) = (x[a], x[b]);
        x[a] = xa * theta.cos() - xb * theta.sin();
        x[b] = xa * theta.sin() + xb * theta.cos();
    }
}

fn gelu_tanh(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

/// Logits at every position of `ids`, in f64.
pub fn reference_logits(t: &Tiny, w: &Weights, ids: &[u32]) -> Vec<Vec<f64>> {
    let g = |n: &str| &w[n].1;
    let eps = 1e-6f32 as f64;
    let (hd, n) = (t.head_dim, ids.len());
    let mut xs: Vec<Vec<f64>> = ids
        .iter()
        .map(|&i| {
            let row = &g("token_embd.weight")[i as usize * t.hidden..][..t.hidden];
            let s = if t.gemma() {
                (t.hidden as f32).sqrt() as f64
            } else {
                1.0
            };
            row.iter().map(|v| v * s).collect()
        })
        .collect();
    for il in 0..t.layers {
        let n_ = |s: &str| format!("blk.{il}.{s}");
        let base = if t.local(il).is_some() {
            1e4
        } else {
            t.rope_base
        };
        let (mut qs, mut ks, mut vs) = (vec![], vec![], vec![]);
        for (pos, x) in xs.iter().enumerate() {
            let h = rms_norm(x, g(&n_("attn_norm.weight")), eps);
            let mut q = matvec(g(&n_("attn_q.weight")), t.q_out(), &h);
            let mut k = matvec(g(&n_("attn_k.weight")), t.kv_out(), &h);
            let mut v = matvec(g(&n_("attn_v.weight")), t.kv_out(), &h);
            if t.arch == "qwen2" {
                for (a, b) in [
                    (&mut q, "attn_q.bias"),
                    (&mut k, "attn_k.bias"),
                    (&mut v, "attn_v.bias"),
                ] {
                    a.iter_mut().zip(g(&n_(b))).for_each(|(x, y)| *x += y);
                }
            }
            for (vec, norm) in [
                (&mut q, "attn_q_norm.weight"),
                (&mut k, "attn_k_norm.weight"),
            ] {
                for head in vec.chunks_mut(hd) {
                    if t.qk_norm() {
                        let r = rms_norm(head, g(&n_(norm)), eps);
                        head.copy_from_slice(&r);
                    }
                    rope(head, pos, base, t.arch == "llama");
                }
            }
            // The model's KV cache holds f16 keys and values.
            let half = |x: Vec<f64>| -> Vec<f64> {
                x.into_iter()
                    .map(|v| half::f16::from_f64(v).to_f64())
                    .collect()
            };
            qs.push(q);
            ks.push(half(k));
            vs.push(half(v));
        }
        for i in 0..n {
            let mut att = vec![0.0; t.q_out()];
            for h in 0..t.heads {
                let kvh = h / (t.heads / t.kv_heads);
                let q = &qs[i][h * hd..][..hd];
                let visible: Vec<usize> = (0..=i)
                    .filter(|&j| t.local(il).is_none_or(|w| j + w > i))
                    .collect();
                let s: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        let k = &ks[j][kvh * hd..][..hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (&j, p) in visible.iter().zip(&e) {
                    for c in 0..hd {
                        att[h * hd + c] += p / z * vs[j][kvh * hd + c];
                    }
                }
            }
            let mut o = matvec(g(&n_("attn_output.weight")), t.hidden, &att);
            if t.gemma() {
                o = rms_norm(&o, g(&n_("post_attention_norm.weight")), eps);
            }
            xs[i].iter_mut().zip(&o).for_each(|(x, y)| *x += y);
        }
        for x in xs.iter_mut() {
            let h = rms_norm(x, g(&n_("ffn_norm.weight")), eps);
            let gate = matvec(g(&n_("ffn_gate.weight")), t.ffn, &h);
            let up = matvec(g(&n_("ffn_up.weight")), t.ffn, &h);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(&a, &b)| {
                    let a = if t.gemma() {
                        gelu_tanh(a)
                    } else {
                        a / (1.0 + (-a).exp())
                    };
                    a * b
                })
                .collect();
            let mut d = matvec(g(&n_("ffn_down.weight")), t.hidden, &act);
            if t.gemma() {
                d = rms_norm(&d, g(&n_("post_ffw_norm.weight")), eps);
            }
            x.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
        }
    }
    let out = if t.tied {
        "token_embd.weight"
    } else {
        "output.weight"
    };
    let vocab = w[out].0[0];
    xs.iter()
        .map(|x| matvec(g(out), vocab, &rms_norm(x, g("output_norm.weight"), eps)))
        .collect()
}

/// Greedy continuation of `ids` by the reference (full recompute per step).
pub fn reference_greedy(t: &Tiny, w: &Weights, ids: &[u32], steps: usize) -> Vec<u32> {
    let mut seq = ids.to_vec();
    let mut out = Vec::new();
    for _ in 0..steps {
        let logits = reference_logits(t, w, &seq);
        let last = logits.last().unwrap();
        let mut best = 0;
        for (i, &v) in last.iter().enumerate() {
            if v > last[best] {
                best = i;
            }
        }
        out.push(best as u32);
        seq.push(best as u32);
    }
    out
}
