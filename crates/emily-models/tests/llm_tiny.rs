//! The four architectures' graphs on small random-weight GGUF files written
//! with our writer, against an independent float64 forward pass: logits at
//! every position, greedy tokens, base vs fast-kernel graphs, batched vs
//! single generation, sampling, stops, and the chat template.

mod common;

use std::sync::Arc;

use common::tiny_llm::{
    gguf, gguf_with_template, reference_greedy, reference_logits, stored, weights, Tiny,
};
use emily_models::gguf::GgufFile;
use emily_models::llm::{
    warm_up, BatchRequest, ChatMessage, FinishReason, GenerateOptions, LlmModel, LoadOptions,
    RunningBatch, SamplingOptions,
};

const PROMPT: [u32; 7] = [3, 257, 40, 100, 257, 7, 99];

fn load(t: &Tiny, half: bool, fast: bool, seed: u64) -> (LlmModel, common::tiny_llm::Weights) {
    let (tokens, _, _) = common::tiny_llm::vocab();
    let w = weights(t, tokens.len(), seed);
    let file = GgufFile::parse(Arc::new(gguf(t, &w, half)), format!("{}.gguf", t.arch)).unwrap();
    let opts = LoadOptions {
        context: Some(32),
        fast_kernels: fast,
    };
    (LlmModel::from_gguf(&file, opts).unwrap(), stored(&w, half))
}

fn check_against_reference(t: Tiny, half: bool, seed: u64) {
    for fast in [false, true] {
        let (m, w) = load(&t, half, fast, seed);
        let want = reference_logits(&t, &w, &PROMPT);
        let got = m.logits_all(&PROMPT).unwrap();
        let vocab = m.config().vocab;
        let tol = if half { 2e-3 } else { 2e-4 };
        for (pos, row) in want.iter().enumerate() {
            for (i, &r) in row.iter().enumerate() {
                let g = got[pos * vocab + i] as f64;
                assert!(
                    (g - r).abs() <= tol * (1.0 + r.abs()),
                    "{} fast={fast} pos {pos} logit {i}: {g} vs {r}",
                    t.arch
                );
            }
        }
        let greedy = reference_greedy(&t, &w, &PROMPT, 8);
        let opts = GenerateOptions {
            max_tokens: 8,
            model_stop_tokens: false,
            ..GenerateOptions::default()
        };
        let mut streamed = Vec::new();
        let g = m
            .generator(&PROMPT, &opts)
            .unwrap()
            .run(|ev| {
                streamed.push(ev.id);
                true
            })
            .unwrap();
        assert_eq!(g.tokens, greedy, "{} fast={fast}", t.arch);
        assert_eq!(streamed, greedy);
        assert_eq!(g.finish, FinishReason::Length);
        // Prefill (one bucket) and the decode step: two plans.
        assert_eq!(m.step_plans(), 2, "{}", t.arch);
    }
}

#[test]
fn qwen3_matches_the_float64_reference() {
    check_against_reference(Tiny::qwen3(), false, 1);
}

#[test]
fn llama_with_interleaved_rope_matches_the_float64_reference() {
    check_against_reference(Tiny::llama(), false, 2);
}

#[test]
fn qwen2_with_biases_and_f16_weights_matches_the_float64_reference() {
    check_against_reference(Tiny::qwen2(), true, 3);
}

#[test]
fn gemma3_with_sliding_windows_matches_the_float64_reference() {
    check_against_reference(Tiny::gemma3(), false, 4);
}

#[test]
fn the_wrong_rope_layout_is_caught() {
    // The llama reference with split-half RoPE disagrees with the graph.
    let t = Tiny::llama();
    let (m, w) = load(&t, false, true, 2);
    let want = reference_logits(
        &Tiny { arch: "qwen2", ..t },
        &w_with_zero_bias(&t, &w),
        &PROMPT,
    );
    let got = m.logits_all(&PROMPT).unwrap();
    let vocab = m.config().vocab;
    let worst = want
        .iter()
        .enumerate()
        .flat_map(|(p, row)| row.iter().enumerate().map(move |(i, r)| (p, i, *r)))
        .map(|(p, i, r)| (got[p * vocab + i] as f64 - r).abs())
        .fold(0.0, f64::max);
    assert!(
        worst > 1e-2,
        "split-half RoPE should change the logits: {worst}"
    );
}

/// `w` plus zero q/k/v biases, so the qwen2 reference (split-half RoPE) can
/// run llama's weights.
fn w_with_zero_bias(t: &Tiny, w: &common::tiny_llm::Weights) -> common::tiny_llm::Weights {
    let mut w = w.clone();
    for il in 0..t.layers {
        for (n, len) in [
            ("attn_q.bias", t.heads * t.head_dim),
            ("attn_k.bias", t.kv_heads * t.head_dim),
            ("attn_v.bias", t.kv_heads * t.head_dim),
        ] {
            w.insert(format!("blk.{il}.{n}"), (vec![len], vec![0.0; len]));
        }
    }
    w
}

#[test]
fn batched_generation_matches_one_prompt_at_a_time() {
    let (m, _) = load(&Tiny::qwen3(), false, true, 5);
    let prompts = vec![PROMPT.to_vec(), vec![5, 6], vec![260, 2, 9, 11, 30]];
    let opts = GenerateOptions {
        max_tokens: 6,
        model_stop_tokens: false,
        ..GenerateOptions::default()
    };
    let mut events = vec![0usize; 3];
    let batch = m
        .generate_batch(&prompts, &opts, |b, _| events[b] += 1)
        .unwrap();
    assert_eq!(events, vec![6, 6, 6]);
    for (p, g) in prompts.iter().zip(&batch) {
        let single = m.generator(p, &opts).unwrap().run(|_| true).unwrap();
        assert_eq!(g.tokens, single.tokens, "prompt {p:?}");
    }
}

/// A greedy request for `max_tokens` tokens that ignores the model's stop
/// tokens (every row runs to its limit).
fn greedy_request(prompt: Vec<u32>, max_tokens: usize) -> BatchRequest {
    BatchRequest {
        prompt,
        opts: GenerateOptions {
            max_tokens,
            model_stop_tokens: false,
            ..GenerateOptions::default()
        },
    }
}

/// The tokens `r` generates as a single generation.
fn tokens_alone(m: &LlmModel, r: &BatchRequest) -> Vec<u32> {
    m.generator(&r.prompt, &r.opts)
        .unwrap()
        .run(|_| true)
        .unwrap()
        .tokens
}

/// One step of `batch`: each row's token streamed into `tokens[id]`, each
/// finished row's generation into `done[id]`.
fn advance(
    batch: &mut RunningBatch<'_>,
    tokens: &mut [Vec<u32>],
    done: &mut [Option<emily_models::llm::Generation>],
) {
    for f in batch
        .advance(|id, ev| {
            tokens[id].push(ev.id);
            true
        })
        .unwrap()
    {
        done[f.id] = Some(f.generation);
    }
}

/// Rows join a running batch at step boundaries (prefilled alone, ending at
/// the batch's position), leave when done, and a batch that drains starts
/// over; every row's greedy tokens are those of its prompt alone, and a row
/// that cannot fit yet waits.
#[test]
fn rows_joining_a_running_batch_match_one_prompt_at_a_time() {
    let (m, _) = load(&Tiny::llama(), false, true, 9);
    let request = |prompt: &[u32], max_tokens| greedy_request(prompt.to_vec(), max_tokens);
    let requests = [
        request(&PROMPT, 12),
        request(&[5, 6], 5),
        request(&[260, 2, 9, 11, 30], 4),
        request(&[7; 9], 3),
        request(&[40, 41], 0),
    ];
    // Rows move in the caches' own buffers (room for a power of two of
    // rows, or four at once), a leaver's place taken by the last row.
    for max_rows in [None, Some(4)] {
        let mut batch = match max_rows {
            None => RunningBatch::new(&m),
            Some(rows) => RunningBatch::with_max_rows(&m, rows),
        };
        let mut tokens = vec![Vec::new(); requests.len()];
        let mut done = vec![None; requests.len()];
        // Row 0 starts alone; 1 joins after one step, 2 and 4 after two. Row 3's
        // 9-token prompt needs a 16-token bucket: it joins only once the batch
        // has moved that far or drained.
        batch.start(&[(0, &requests[0])]).unwrap();
        let mut step = 0;
        let mut joined_3_at = None;
        while done.iter().any(Option::is_none) {
            match step {
                1 => batch.join(1, &requests[1]).unwrap(),
                2 => {
                    batch.join(2, &requests[2]).unwrap();
                    batch.join(4, &requests[4]).unwrap();
                }
                _ => {}
            }
            if step >= 2 && joined_3_at.is_none() && batch.can_join(&requests[3]) {
                batch.join(3, &requests[3]).unwrap();
                joined_3_at = Some(step);
            }
            if step == 2 {
                assert!(
                    !batch.can_join(&requests[3]),
                    "a 16-token bucket cannot end at position 9"
                );
            }
            advance(&mut batch, &mut tokens, &mut done);
            step += 1;
            assert!(step < 100, "the batch never drained");
        }
        assert!(batch.is_empty());
        assert!(joined_3_at.is_some_and(|s| s > 2), "{joined_3_at:?}");
        for (i, r) in requests.iter().enumerate() {
            let g = done[i].as_ref().unwrap();
            assert_eq!(g.tokens, tokens_alone(&m, r), "row {i}");
            assert_eq!(tokens[i], g.tokens, "row {i}: streamed events");
            assert_eq!(g.tokens.len(), r.opts.max_tokens, "row {i}");
            assert_eq!(g.finish, FinishReason::Length, "row {i}");
        }
    }
    // A row cannot join past the cache's end.
    let mut batch = RunningBatch::new(&m);
    batch.start(&[(0, &requests[0])]).unwrap();
    assert!(
        !batch.can_join(&request(&[5, 6], 30)),
        "7 + 30 > 32 positions"
    );
    assert!(batch.join(1, &request(&[5, 6], 30)).is_err());
}

/// A prompt whose bucket does not fit before a young batch's position
/// joins in several prefill calls as soon as its length rounded up to 8
/// does, and decodes as it would alone.
#[test]
fn a_long_prompt_joins_a_young_batch_in_chunks() {
    let (m, _) = load(&Tiny::llama(), false, true, 9);
    let first = greedy_request(PROMPT.to_vec(), 20);
    // 17 tokens: a 32-token bucket (never before position 32 of 32), or
    // 16 + 8 from position 24.
    let long = greedy_request((0..17).map(|i| 3 + 37 * i % 250).collect(), 4);
    let mut batch = RunningBatch::with_max_rows(&m, 2);
    batch.start(&[(0, &first)]).unwrap();
    let mut tokens = vec![Vec::new(); 2];
    let mut done = vec![None; 2];
    let mut position = PROMPT.len();
    while done.iter().any(Option::is_none) {
        if done[1].is_none() && tokens[1].is_empty() && batch.len() == 1 {
            assert_eq!(batch.can_join(&long), position >= 24, "at {position}");
            if position >= 24 {
                batch.join(1, &long).unwrap();
            } else {
                assert!(batch.join(1, &long).is_err(), "at {position}");
            }
        }
        advance(&mut batch, &mut tokens, &mut done);
        position += 1;
        assert!(position < 40, "the batch never drained");
    }
    for (i, r) in [&first, &long].into_iter().enumerate() {
        let g = done[i].as_ref().unwrap();
        assert_eq!(g.tokens, tokens_alone(&m, r), "row {i}");
        assert_eq!(g.tokens.len(), r.opts.max_tokens, "row {i}");
    }
}

/// The warm-up compiles what a burst of short requests needs: a burst
/// afterwards (one request starts a batch alone, two more join it as soon
/// as they can, every row to its end) compiles no plan of its own, while
/// the same burst on a fresh model compiles several.
#[test]
fn the_warm_up_compiles_what_a_burst_of_short_requests_needs() {
    let t = Tiny::qwen3();
    let (tokens, _, _) = common::tiny_llm::vocab();
    let w = weights(&t, tokens.len(), 5);
    let file = GgufFile::parse(Arc::new(gguf(&t, &w, false)), "qwen3.gguf").unwrap();
    let fresh = || {
        let opts = LoadOptions {
            context: Some(256),
            fast_kernels: true,
        };
        LlmModel::from_gguf(&file, opts).unwrap()
    };
    let plans = |m: &LlmModel| m.batch_plans() + m.step_plans();
    let burst = |m: &LlmModel| {
        let r = greedy_request(PROMPT.repeat(2)[..13].to_vec(), 6);
        let mut batch = RunningBatch::with_max_rows(m, 3);
        batch.start(&[(0, &r)]).unwrap();
        let mut joined = 1;
        while !batch.is_empty() {
            batch.advance(|_, _| true).unwrap();
            if joined < 3 && batch.can_join(&r) {
                batch.join(joined, &r).unwrap();
                joined += 1;
            }
        }
        assert_eq!(joined, 3, "every row joined");
    };
    let cold = fresh();
    burst(&cold);
    assert!(plans(&cold) >= 4, "a burst compiles its prefills and steps");
    let warm = fresh();
    warm_up(&warm, 3).unwrap();
    let before = plans(&warm);
    burst(&warm);
    assert_eq!(plans(&warm), before, "the burst compiled plans of its own");
    // Contexts too short for some or all of its shapes, and many rows: it
    // runs what fits and errs on nothing.
    for (context, rows) in [(8, 4), (16, 2), (32, 8), (64, 64)] {
        let opts = LoadOptions {
            context: Some(context),
            fast_kernels: true,
        };
        let m = LlmModel::from_gguf(&file, opts).unwrap();
        warm_up(&m, rows).unwrap_or_else(|e| panic!("context {context}, {rows} rows: {e}"));
    }
}

#[test]
fn sampling_is_seeded_and_stops_are_honoured() {
    let (m, _) = load(&Tiny::qwen3(), false, true, 6);
    let sampled = |seed| {
        let opts = GenerateOptions {
            max_tokens: 12,
            model_stop_tokens: false,
            sampling: SamplingOptions {
                temperature: 1.5,
                top_k: 40,
                top_p: 0.95,
                min_p: 0.01,
                repetition_penalty: 1.3,
                seed,
                ..SamplingOptions::default()
            },
            ..GenerateOptions::default()
        };
        m.generator(&PROMPT, &opts).unwrap().run(|_| true).unwrap()
    };
    let (a, b, c) = (sampled(7), sampled(7), sampled(8));
    assert_eq!(a.tokens, b.tokens);
    assert_ne!(a.tokens, c.tokens, "another seed gives other tokens");

    // A stop token ends generation and is not part of the output.
    let stop = a.tokens[3];
    let first = a.tokens.iter().position(|&t| t == stop).unwrap();
    let opts = GenerateOptions {
        max_tokens: 12,
        stop_tokens: vec![stop],
        model_stop_tokens: false,
        sampling: SamplingOptions {
            temperature: 1.5,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.01,
            repetition_penalty: 1.3,
            seed: 7,
            ..SamplingOptions::default()
        },
        ..GenerateOptions::default()
    };
    let g = m.generator(&PROMPT, &opts).unwrap().run(|_| true).unwrap();
    assert_eq!(g.tokens, a.tokens[..first]);
    assert_eq!(g.finish, FinishReason::StopToken(stop));

    // A stop string is cut from the text, and no streamed piece shows it.
    let full = m.tokenizer().decode(&a.tokens, true).unwrap();
    let cut: String = full.chars().skip(2).take(2).collect();
    let mut opts = opts.clone();
    opts.stop_tokens.clear();
    opts.stop_strings = vec![cut.clone()];
    let mut streamed = String::new();
    let g = m
        .generator(&PROMPT, &opts)
        .unwrap()
        .run(|ev| {
            streamed.push_str(&ev.text);
            true
        })
        .unwrap();
    let at = full.find(&cut).unwrap();
    assert_eq!(g.text, full[..at]);
    assert_eq!(streamed, g.text);
    assert_eq!(g.finish, FinishReason::StopString(cut));
}

#[test]
fn chat_template_prompt_and_bad_requests() {
    let (m, _) = load(&Tiny::qwen3(), false, false, 9);
    let ids = m.chat_prompt(&[ChatMessage::user("the ab")]).unwrap();
    let text = m.tokenizer().decode(&ids, false).unwrap();
    assert_eq!(text, "<|user|>the ab\n<|assistant|>");
    let opts = GenerateOptions {
        max_tokens: 3,
        ..GenerateOptions::default()
    };
    let g = m.chat(&[ChatMessage::user("hi")], &opts, |_| true).unwrap();
    assert!(g.tokens.len() <= 3);
    // An empty prompt, a prompt past the context, tokens outside the
    // vocabulary and bad sampling options are errors.
    assert!(m.generator(&[], &opts).is_err());
    assert!(m.generator(&[1; 33], &opts).is_err());
    assert!(m.generator(&[1, 999_999], &opts).is_err());
    let bad = GenerateOptions {
        sampling: SamplingOptions {
            top_p: 0.0,
            temperature: 1.0,
            ..SamplingOptions::default()
        },
        ..opts.clone()
    };
    assert!(m.generator(&[1, 2], &bad).is_err());
    // Generation stops when the cache is full.
    let long = GenerateOptions {
        max_tokens: 100,
        model_stop_tokens: false,
        ..GenerateOptions::default()
    };
    let g = m.generator(&[1; 30], &long).unwrap().run(|_| true).unwrap();
    assert_eq!(g.finish, FinishReason::ContextFull);
    assert_eq!(g.tokens.len(), 3);
}

#[test]
fn a_file_without_a_chat_template_gets_its_architectures_builtin_one() {
    let messages = [
        ChatMessage::system(" Be brief. "),
        ChatMessage::user("the ab "),
        ChatMessage::assistant("ab"),
        ChatMessage::user("the"),
    ];
    for (t, want) in [
        (
            Tiny::gemma3(),
            "<start_of_turn>user\nBe brief.\n\nthe ab<end_of_turn>\n\
             <start_of_turn>model\nab<end_of_turn>\n\
             <start_of_turn>user\nthe<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            Tiny::qwen3(),
            "<|im_start|>system\n Be brief. <|im_end|>\n<|im_start|>user\nthe ab <|im_end|>\n\
             <|im_start|>assistant\nab<|im_end|>\n<|im_start|>user\nthe<|im_end|>\n\
             <|im_start|>assistant\n",
        ),
    ] {
        let (tokens, _, _) = common::tiny_llm::vocab();
        let w = weights(&t, tokens.len(), 5);
        let bytes = gguf_with_template(&t, &w, false, None);
        let file = GgufFile::parse(Arc::new(bytes), format!("{}.gguf", t.arch)).unwrap();
        let opts = LoadOptions {
            context: Some(64),
            fast_kernels: true,
        };
        let m = LlmModel::from_gguf(&file, opts).unwrap();
        let ids = m.chat_prompt(&messages).unwrap();
        assert_eq!(
            m.tokenizer().decode(&ids, false).unwrap(),
            want,
            "{}",
            t.arch
        );
        let reply = GenerateOptions {
            max_tokens: 2,
            ..GenerateOptions::default()
        };
        let g = m
            .chat(&[ChatMessage::user("ab")], &reply, |_| true)
            .unwrap();
        assert!(g.tokens.len() <= 2);
    }
}

#[test]
fn a_loaded_model_is_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<LlmModel>();
    let (m, _) = load(&Tiny::qwen3(), false, true, 10);
    let m = Arc::new(m);
    let opts = GenerateOptions {
        max_tokens: 5,
        model_stop_tokens: false,
        ..GenerateOptions::default()
    };
    let want = m
        .generator(&PROMPT, &opts)
        .unwrap()
        .run(|_| true)
        .unwrap()
        .tokens;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (m, o) = (m.clone(), opts.clone());
            std::thread::spawn(move || {
                m.generator(&PROMPT, &o)
                    .unwrap()
                    .run(|_| true)
                    .unwrap()
                    .tokens
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

#[test]
fn quantized_copies_load_and_stay_close_to_the_f32_model() {
    use emily_models::llm::quantize::{quantize_gguf, QuantType};
    // Rows of 64 and 128 features: whole blocks of every format.
    let t = Tiny {
        hidden: 64,
        ffn: 128,
        ..Tiny::qwen3()
    };
    let (tokens, _, _) = common::tiny_llm::vocab();
    let w = weights(&t, tokens.len(), 11);
    let bytes = gguf(&t, &w, false);
    let f32_file = GgufFile::parse(Arc::new(bytes), "tiny.gguf").unwrap();
    let opts = LoadOptions {
        context: Some(32),
        fast_kernels: true,
    };
    let want = LlmModel::from_gguf(&f32_file, opts)
        .unwrap()
        .logits_all(&PROMPT)
        .unwrap();
    let scale = want.iter().map(|x| x.abs()).fold(0.0, f32::max);
    let mut diffs: Vec<f32> = Vec::new();
    // Max logit error relative to the largest logit.
    for (ty, tol) in [
        (QuantType::Q8_0, 0.03),
        (QuantType::Q4_0, 0.3),
        (QuantType::Int4G64, 0.3),
    ] {
        let (writer, report) = quantize_gguf(&f32_file, ty).unwrap();
        // Every 2-D matrix (rows of whole blocks) is converted; norms are copied.
        assert!(report.quantized >= 7 * t.layers, "{ty:?}: {report:?}");
        assert!(report.bytes_out * 2 < report.bytes_in, "{ty:?}: {report:?}");
        let q = GgufFile::parse(Arc::new(writer.to_bytes().unwrap()), "q.gguf").unwrap();
        assert_eq!(
            q.tensor("blk.0.attn_q.weight").unwrap().ggml_type,
            ty.ggml_type()
        );
        assert_eq!(
            q.tensor("blk.0.attn_norm.weight").unwrap().ggml_type,
            emily_models::gguf::GgmlType::F32
        );
        let got = LlmModel::from_gguf(&q, opts)
            .unwrap()
            .logits_all(&PROMPT)
            .unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
            / scale;
        assert!(
            diff > 0.0 && diff < tol,
            "{ty:?}: max logit diff {diff} of the largest logit"
        );
        diffs.push(diff);
    }
    assert!(
        diffs[0] < diffs[1] && diffs[0] < diffs[2],
        "8 bits beat 4: {diffs:?}"
    );
    assert!(QuantType::from_name("q5_k").is_none());
}

/// The GGUF fuzzer's seeds (`fuzz/seeds/gguf/`) are these tiny models, so the
/// fuzzer starts from files that load completely; `EMILY_WRITE_SEEDS=1`
/// rewrites them after a change to the writer or the tiny models.
#[test]
fn gguf_fuzz_seeds_are_the_tiny_models() {
    let dir = common::workspace_root().join("fuzz/seeds/gguf");
    let (tokens, _, _) = common::tiny_llm::vocab();
    for t in [Tiny::qwen3(), Tiny::gemma3()] {
        let bytes = gguf(&t, &weights(&t, tokens.len(), 11), true);
        let path = dir.join(format!("tiny_{}.gguf", t.arch));
        if std::env::var_os("EMILY_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let seed = std::fs::read(&path).unwrap_or_default();
        assert!(
            seed == bytes,
            "{} differs from the tiny {} model: run EMILY_WRITE_SEEDS=1 cargo test --release -p emily-models --test llm_tiny gguf_fuzz_seeds",
            path.display(),
            t.arch
        );
    }
}

#[test]
fn a_model_loaded_from_a_path_matches_the_same_file_parsed_in_memory() {
    // `LlmModel::load` copies the streamed weights onto huge pages (and
    // keeps a gather-only embedding mapped); the logits must not change,
    // with tied (qwen3) and separate (llama) output matrices.
    let dir = tempfile::tempdir().unwrap();
    for (t, seed) in [(Tiny::qwen3(), 11), (Tiny::llama(), 12)] {
        let (tokens, _, _) = common::tiny_llm::vocab();
        let w = weights(&t, tokens.len(), seed);
        let bytes = gguf(&t, &w, false);
        let path = dir.path().join(format!("{}.gguf", t.arch));
        std::fs::write(&path, &bytes).unwrap();
        let opts = LoadOptions {
            context: Some(32),
            fast_kernels: true,
        };
        let parsed = GgufFile::parse(Arc::new(bytes), &path).unwrap();
        let want = LlmModel::from_gguf(&parsed, opts)
            .unwrap()
            .logits_all(&PROMPT)
            .unwrap();
        let got = LlmModel::load(&path, opts)
            .unwrap()
            .logits_all(&PROMPT)
            .unwrap();
        assert_eq!(got, want, "{}", t.arch);
        assert!(want.iter().any(|&v| v != 0.0));
    }
}
