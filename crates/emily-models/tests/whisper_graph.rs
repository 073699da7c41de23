//! Whisper tiny.en as `emily-nn` graphs: the composed graphs match the direct
//! implementation and the goldens, the fast-kernels rewrite keeps the
//! topology and parameters while fusing norms and attention, and greedy
//! decoding through the graph step reproduces the reference tokens.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::{golden_ids, goldens, max_abs_diff, model_dir};
use emily::Kernels;
use emily::Tensor;
use emily_models::npy::read_npy;
use emily_models::tokenizer::WhisperTokenizer;
use emily_models::whisper::graph::{GraphDecoderState, WhisperGraph, TIED_OUTPUT, TOKEN_EMBEDDING};
use emily_models::whisper::{decoding, load_whisper, Whisper, WhisperCheckpoint};

const PROMPT: [u32; 2] = [50257, 50362];

fn checkpoint() -> &'static WhisperCheckpoint {
    static C: OnceLock<WhisperCheckpoint> = OnceLock::new();
    C.get_or_init(|| load_whisper(&model_dir("whisper-tiny.en")).unwrap())
}

fn base() -> &'static WhisperGraph {
    static G: OnceLock<WhisperGraph> = OnceLock::new();
    G.get_or_init(|| WhisperGraph::new(checkpoint()).unwrap())
}

fn fast() -> &'static WhisperGraph {
    static G: OnceLock<WhisperGraph> = OnceLock::new();
    G.get_or_init(|| base().with_fast_kernels().unwrap())
}

fn mel() -> Tensor {
    let mel = read_npy(&goldens().join("jfk_logmel.npy")).unwrap();
    Tensor::from_slice(&mel.data, &[1, 80, 3000]).unwrap()
}

fn encoded(g: &'static WhisperGraph) -> &'static Tensor {
    static BASE: OnceLock<Tensor> = OnceLock::new();
    static FAST: OnceLock<Tensor> = OnceLock::new();
    let cell = if std::ptr::eq(g, base()) {
        &BASE
    } else {
        &FAST
    };
    cell.get_or_init(|| g.encode(&mel()).unwrap())
}

fn golden(name: &str) -> Vec<f32> {
    read_npy(&goldens().join(name)).unwrap().data
}

fn feed(g: &WhisperGraph, state: &mut GraphDecoderState, at: usize, tokens: &[u32]) -> Vec<f32> {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::from_slice(&ids, &[1, ids.len()]).unwrap();
    let offset = Tensor::from_slice(&[at as i64], &[1]).unwrap();
    let logits = g.step(&ids, &offset, state).unwrap();
    assert_eq!(logits.shape(), &[1, checkpoint().dims.n_vocab]);
    logits.to_vec::<f32>().unwrap()
}

fn step0_logits(g: &'static WhisperGraph) -> Vec<f32> {
    let mut state = g.start(encoded(g)).unwrap();
    feed(g, &mut state, 0, &PROMPT)
}

fn argmax(v: &[f32]) -> usize {
    decoding::argmax(v) as usize
}

/// Greedy decoding (no timestamps) with the model's suppress tokens.
fn greedy(g: &'static WhisperGraph) -> Vec<u32> {
    let ck = checkpoint();
    let eot = WhisperTokenizer::from_file(&ck.tokenizer_path)
        .unwrap()
        .special()
        .eot;
    let mut state = g.start(encoded(g)).unwrap();
    let mut logits = feed(g, &mut state, 0, &PROMPT);
    let mut at = PROMPT.len();
    let mut out = Vec::new();
    loop {
        decoding::suppress(&mut logits, &ck.generation.suppress_tokens);
        if out.is_empty() {
            decoding::suppress(&mut logits, &ck.generation.begin_suppress_tokens);
        }
        let next = decoding::argmax(&logits);
        if next == eot || out.len() >= 224 {
            break;
        }
        out.push(next);
        logits = feed(g, &mut state, at, &[next]);
        at += 1;
    }
    out
}

#[test]
fn the_graph_encoder_matches_the_direct_implementation_and_the_golden() {
    let enc = encoded(base());
    assert_eq!(enc.shape(), &[1, 1500, 384]);
    let got = enc.to_vec::<f32>().unwrap();
    let d = max_abs_diff(&got, &golden("jfk_encoder_out.npy"));
    assert!(d <= 1e-3, "graph vs golden: max abs diff {d}");

    let short = Tensor::zeros(&[1, 80, 100], emily::DType::F32).unwrap();
    let e = base().encode(&short).unwrap_err().to_string();
    assert!(e.contains("input_features"), "{e}");

    let mel = read_npy(&goldens().join("jfk_logmel.npy")).unwrap();
    let direct = Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Composed).unwrap();
    let want = direct.encode(&mel.data).unwrap().to_vec::<f32>().unwrap();
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-4, "graph vs direct: max abs diff {d}");
    let direct_logits = direct.prompt_logits(enc, &PROMPT).unwrap();
    let d = max_abs_diff(&step0_logits(base()), &direct_logits);
    assert!(
        d <= 1e-4,
        "step-0 logits, graph vs direct: max abs diff {d}"
    );
}

#[test]
fn step_zero_logits_match_the_golden_composed_and_fused() {
    let want = golden("jfk_step0_logits.npy");
    for (name, g) in [("composed", base()), ("fused", fast())] {
        let logits = step0_logits(g);
        let d = max_abs_diff(&logits, &want);
        assert!(d <= 1e-3, "{name}: step-0 logits max abs diff {d}");
        assert_eq!(argmax(&logits), 843, "{name}");
    }
}

#[test]
fn composed_and_fast_kernel_graphs_agree() {
    let (a, b) = (encoded(base()), encoded(fast()));
    let d = max_abs_diff(&a.to_vec::<f32>().unwrap(), &b.to_vec::<f32>().unwrap());
    assert!(d <= 1e-4, "encoder: max abs diff {d}");
    let d = max_abs_diff(&step0_logits(base()), &step0_logits(fast()));
    assert!(d <= 1e-4, "step-0 logits: max abs diff {d}");
}

#[test]
fn the_rewrite_keeps_topology_and_params_and_fuses_norms_and_attention() {
    let dims = checkpoint().dims;
    let (enc_l, dec_l) = (dims.n_audio_layers, dims.n_text_layers);
    for ((name, m0), (_, m1)) in base().models().into_iter().zip(fast().models()) {
        let names = |m: &emily_nn::Model| -> Vec<String> {
            m.nodes().iter().map(|n| n.name().to_string()).collect()
        };
        assert_eq!(names(m0), names(m1), "{name}: node names");
        assert_eq!(m0.edges(), m1.edges(), "{name}: edges");
        assert_eq!(m0.param_specs(), m1.param_specs(), "{name}: params");
    }
    assert_eq!(
        base().params().get(TIED_OUTPUT).unwrap().id(),
        fast().params().get(TIED_OUTPUT).unwrap().id(),
        "one parameter store serves both"
    );
    // The tied output projection is the stored half-precision table; the
    // step gathers its token rows from the checkpoint outside the graph, so
    // the table is no parameter of the step.
    let out = base().params().get(TIED_OUTPUT).unwrap();
    assert_eq!(out.dtype(), emily::DType::F16);
    assert!(base().params().get(TOKEN_EMBEDDING).is_none());
    assert!(matches!(
        base().token_table(),
        emily_models::whisper::graph::TokenTable::Stored { .. }
    ));
    // Every store key is a checkpoint (Hugging Face) name, except the tied output.
    for (key, _) in base().params().iter() {
        assert!(
            key == TIED_OUTPUT || checkpoint().weights.contains(key),
            "{key} is not a checkpoint tensor"
        );
    }

    let freq =
        |g: &WhisperGraph| -> BTreeMap<String, usize> { g.op_frequencies().into_iter().collect() };
    let (mut f0, f1) = (freq(base()), freq(fast()));
    let norms = 2 * enc_l + 1 + 3 * dec_l + 1;
    for (op, n) in [
        ("layer_norm", norms),
        ("attention", enc_l + dec_l),
        ("attention_core", dec_l),
    ] {
        assert_eq!(f0.remove(op), Some(n), "{op}");
        f0.insert(format!("fast.{op}"), n);
    }
    assert_eq!(f0, f1);
    let top: Vec<String> = fast()
        .op_frequencies()
        .into_iter()
        .take(10)
        .map(|(op, _)| op)
        .collect();
    assert!(top.contains(&"fast.layer_norm".to_string()), "{top:?}");
    assert!(top.contains(&"fast.attention".to_string()), "{top:?}");
    assert!(!top.iter().any(|op| op == "layer_norm" || op == "attention"));
    let reports = fast().fast_kernel_reports().unwrap();
    assert!(reports.iter().all(|r| r.kept.is_empty()));
    let summary = fast().summary();
    assert!(
        summary.contains("model.decoder.layers.0.self_attn"),
        "{summary}"
    );
    assert!(summary.contains("fast.attention"));
}

#[test]
fn greedy_decoding_through_the_graph_gives_the_reference_tokens() {
    let want = golden_ids();
    assert_eq!(greedy(fast()), want, "fused");
    assert_eq!(greedy(base()), want, "composed");
    // The step compiled once for the prompt and once for all single tokens.
    assert_eq!(fast().decoder_step_plans(), 2);
    assert_eq!(base().decoder_step_plans(), 2);
}

/// Whether the parameter behind `key` reads its checkpoint bytes in place.
fn shares_the_map(ck: &WhisperCheckpoint, g: &WhisperGraph, key: &str, name: &str) -> bool {
    let record = ck.weights.get(name).unwrap();
    let table = g.params().get(key).unwrap().array().unwrap();
    assert!(
        !table.clone().is_unique(),
        "weights are never written in place"
    );
    table.host_bytes().unwrap().as_ptr() == record.bytes().as_ptr()
}

#[test]
fn stored_precision_weights_are_read_from_the_map_in_place() {
    // CTranslate2 packs tensors at odd offsets: an f16 weight there is
    // misaligned, so it is copied; an aligned one is used in place.
    let ck = checkpoint();
    let record = ck.weights.get(TOKEN_EMBEDDING).unwrap();
    let aligned = (record.bytes().as_ptr() as usize).is_multiple_of(2);
    assert_eq!(
        shares_the_map(ck, base(), TIED_OUTPUT, TOKEN_EMBEDDING),
        aligned
    );
    // Safetensors data is aligned: every half weight of the converted
    // checkpoint is read from its memory map without a copy.
    let dir = common::scratch("mapped-weights");
    emily_models::hf::convert_ct2_to_hf(&model_dir("whisper-tiny.en"), &dir).unwrap();
    let hf = load_whisper(&dir).unwrap();
    let g = WhisperGraph::new(&hf).unwrap();
    assert!(shares_the_map(&hf, &g, TIED_OUTPUT, TOKEN_EMBEDDING));
    let q = "model.decoder.layers.0.self_attn.q_proj.weight";
    assert!(shares_the_map(&hf, &g, q, q));
}

/// One single-token step of every row of `state` (`tokens[r]` to row `r`):
/// the logits, row after row.
fn step_rows(
    g: &WhisperGraph,
    state: &mut GraphDecoderState,
    at: usize,
    tokens: &[u32],
) -> Vec<f32> {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::from_slice(&ids, &[ids.len(), 1]).unwrap();
    let offset = Tensor::from_slice(&[at as i64], &[1]).unwrap();
    let logits = g.step(&ids, &offset, state).unwrap();
    assert_eq!(logits.shape(), &[tokens.len(), checkpoint().dims.n_vocab]);
    logits.to_vec::<f32>().unwrap()
}

#[test]
fn rows_sharing_one_window_step_as_single_sequences_do() {
    // Beams: three rows made from the prompt's one, each fed a token, then
    // reordered (row 0 continues old row 2, rows 1 and 2 old row 0) and fed
    // another; the rows share the window's one copy of the cross keys/values
    // and move only the written cache positions.
    let vocab = checkpoint().dims.n_vocab;
    for g in [base(), fast()] {
        let mut rows = g.start(encoded(g)).unwrap();
        feed(g, &mut rows, 0, &PROMPT);
        assert!(!rows.shares_cross());
        rows.select_rows(&[0, 0, 0], PROMPT.len()).unwrap();
        assert!(rows.shares_cross() && rows.rows() == 3);
        let (first, second) = ([843u32, 400, 1649], [11u32, 523, 616]);
        let a = step_rows(g, &mut rows, 2, &first);
        let origins = [2usize, 0, 0];
        rows.select_rows(&origins, 3).unwrap();
        let b = step_rows(g, &mut rows, 3, &second);
        for r in 0..3 {
            let mut single = g.start(encoded(g)).unwrap();
            feed(g, &mut single, 0, &PROMPT);
            let a1 = feed(g, &mut single, 2, &[first[r]]);
            let diff = max_abs_diff(&a[r * vocab..(r + 1) * vocab], &a1);
            assert!(diff < 1e-3, "row {r} step 1: max |diff| {diff}");
            let mut single = g.start(encoded(g)).unwrap();
            feed(g, &mut single, 0, &PROMPT);
            feed(g, &mut single, 2, &[first[origins[r]]]);
            let b1 = feed(g, &mut single, 3, &[second[r]]);
            let diff = max_abs_diff(&b[r * vocab..(r + 1) * vocab], &b1);
            assert!(diff < 1e-3, "row {r} step 2: max |diff| {diff}");
        }
        // Bad selections are errors, not panics.
        assert!(rows.select_rows(&[3], 4).is_err());
        assert!(rows.select_rows(&[], 4).is_err());
        assert!(rows.select_rows(&[0], 449).is_err());
    }
}
