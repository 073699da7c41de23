//! Batched decoding: sequences that join a running batch at different times,
//! with prompts of different lengths, generate exactly the tokens they
//! generate alone — joining one by one or several in one call; a row dropped
//! midway leaves the others untouched.

mod common;

use std::sync::OnceLock;

use common::{jfk_samples_reference, model_dir};
use emily::Kernels;
use emily_models::whisper::graph::{regroup_rows, BatchDecoderState, Joiner};
use emily_models::whisper::{Session, TranscribeOptions, Whisper, WindowDecoder};

fn model() -> &'static Whisper {
    static W: OnceLock<Whisper> = OnceLock::new();
    W.get_or_init(|| {
        Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Fused)
            .expect("run `make models` first")
    })
}

struct Seq {
    picker: WindowDecoder,
    next: Option<u32>,
    expected: Vec<u32>,
}

/// A JFK session's window (greedy: what a window decoded step by step
/// does): its encoder output, prompt, picker and the
/// tokens `transcribe` generates for it.
fn sequence(opts: TranscribeOptions) -> (emily::Tensor, Vec<u32>, Seq) {
    let w = model();
    let audio = jfk_samples_reference();
    let mut s = Session::from_samples(w, &audio, &opts).unwrap();
    let enc = w.encode(s.next_window().unwrap().unwrap()).unwrap();
    let prompt = s.prompt(w, &enc).unwrap();
    let picker = s.window_decoder(w, &prompt);
    let alone = w.transcribe(&audio, &opts).unwrap();
    let expected = alone
        .segments
        .iter()
        .flat_map(|s| s.tokens.clone())
        .collect();
    (
        enc,
        prompt,
        Seq {
            picker,
            next: None,
            expected,
        },
    )
}

fn text_only(tokens: &[u32]) -> Vec<u32> {
    let sp = model().tokenizer().special();
    tokens.iter().cloned().filter(|&t| t < sp.eot).collect()
}

#[test]
fn rows_joining_a_running_batch_decode_as_they_do_alone() {
    let w = model();
    let g = w.graph();
    let plain = TranscribeOptions::greedy();
    let timed = TranscribeOptions {
        timestamps: true,
        ..TranscribeOptions::greedy()
    };
    let prompted = TranscribeOptions {
        initial_prompt: Some("President Kennedy, January 1961.".into()),
        ..TranscribeOptions::greedy()
    };
    let mut batch = BatchDecoderState::new();
    let mut rows: Vec<Seq> = Vec::new();
    let mut waiting = vec![sequence(plain), sequence(timed), sequence(prompted)];
    waiting.reverse();
    let mut steps = 0;
    let mut done: Vec<Seq> = Vec::new();
    while !(rows.is_empty() && waiting.is_empty()) {
        // A new row every 4 steps.
        if steps % 4 == 0 {
            if let Some((enc, prompt, mut seq)) = waiting.pop() {
                let mut logits = g
                    .batch_join(&mut batch, &enc, &prompt, 224)
                    .unwrap()
                    .expect("room in the batch");
                seq.next = seq.picker.next_token(&mut logits).unwrap();
                rows.push(seq);
            }
        }
        // Rows that are done leave the batch (others may take their rows).
        let keep: Vec<bool> = rows.iter().map(|r| r.next.is_some()).collect();
        let order = batch.retain(&keep).unwrap();
        let (live, finished) = regroup_rows(rows, &order);
        done.extend(finished);
        rows = live;
        assert_eq!(batch.len(), rows.len());
        if rows.is_empty() {
            steps += 1;
            continue;
        }
        let tokens: Vec<u32> = rows.iter().map(|r| r.next.unwrap()).collect();
        let logits = g.batch_step(&mut batch, &tokens).unwrap();
        for (r, mut l) in rows.iter_mut().zip(logits) {
            r.next = r.picker.next_token(&mut l).unwrap();
        }
        steps += 1;
    }
    assert_eq!(done.len(), 3);
    for s in &done {
        assert_eq!(text_only(s.picker.generated()), s.expected);
    }
}

#[test]
fn a_dropped_row_leaves_the_others_exact() {
    let w = model();
    let g = w.graph();
    let mut batch = BatchDecoderState::new();
    let (enc_a, prompt_a, mut a) = sequence(TranscribeOptions::greedy());
    let (enc_b, prompt_b, mut b) = sequence(TranscribeOptions::greedy());
    let mut la = g
        .batch_join(&mut batch, &enc_a, &prompt_a, 224)
        .unwrap()
        .unwrap();
    a.next = a.picker.next_token(&mut la).unwrap();
    let mut lb = g
        .batch_join(&mut batch, &enc_b, &prompt_b, 224)
        .unwrap()
        .unwrap();
    b.next = b.picker.next_token(&mut lb).unwrap();
    for _ in 0..3 {
        let l = g
            .batch_step(&mut batch, &[a.next.unwrap(), b.next.unwrap()])
            .unwrap();
        let mut l = l.into_iter();
        a.next = a.picker.next_token(&mut l.next().unwrap()).unwrap();
        b.next = b.picker.next_token(&mut l.next().unwrap()).unwrap();
    }
    // `a` is cancelled: `b` moves down to row 0 of the batch's buffers, and
    // `c` joins in the room `a` left (both written in place).
    batch.retain(&[false, true]).unwrap();
    let (enc_c, prompt_c, mut c) = sequence(TranscribeOptions {
        timestamps: true,
        ..TranscribeOptions::greedy()
    });
    let mut lc = g
        .batch_join(&mut batch, &enc_c, &prompt_c, 224)
        .unwrap()
        .unwrap();
    c.next = c.picker.next_token(&mut lc).unwrap();
    // In batch row order; a row leaves the batch when it is done.
    let mut rows = vec![&mut b, &mut c];
    while !rows.is_empty() {
        let keep: Vec<bool> = rows.iter().map(|s| s.next.is_some()).collect();
        let order = batch.retain(&keep).unwrap();
        rows = regroup_rows(rows, &order).0;
        if rows.is_empty() {
            break;
        }
        let tokens: Vec<u32> = rows.iter().map(|s| s.next.unwrap()).collect();
        let logits = g.batch_step(&mut batch, &tokens).unwrap();
        for (s, mut l) in rows.iter_mut().zip(logits) {
            s.next = s.picker.next_token(&mut l).unwrap();
        }
    }
    assert_eq!(text_only(b.picker.generated()), b.expected);
    assert_eq!(text_only(c.picker.generated()), c.expected);
}

#[test]
fn rows_joining_together_with_prompts_of_different_lengths_decode_as_they_do_alone() {
    let w = model();
    let g = w.graph();
    let mut batch = BatchDecoderState::new();
    // One row already decoding, then three joining in one call: prompts of
    // 3 (plain, twice) and more tokens (an initial prompt).
    let (enc0, prompt0, mut first) = sequence(TranscribeOptions::greedy());
    let mut l = g
        .batch_join(&mut batch, &enc0, &prompt0, 224)
        .unwrap()
        .unwrap();
    first.next = first.picker.next_token(&mut l).unwrap();
    for _ in 0..2 {
        let mut l = g.batch_step(&mut batch, &[first.next.unwrap()]).unwrap();
        first.next = first.picker.next_token(&mut l[0]).unwrap();
    }
    let prompted = TranscribeOptions {
        initial_prompt: Some("President Kennedy, January 1961.".into()),
        ..TranscribeOptions::greedy()
    };
    let joining = [
        sequence(TranscribeOptions::greedy()),
        sequence(prompted),
        sequence(TranscribeOptions {
            timestamps: true,
            ..TranscribeOptions::greedy()
        }),
    ];
    assert!(joining[1].1.len() > joining[0].1.len());
    let joiners: Vec<Joiner<'_>> = joining
        .iter()
        .map(|(enc, prompt, _)| Joiner {
            enc,
            prompt,
            max_new: 224,
        })
        .collect();
    let logits = g.batch_join_many(&mut batch, &joiners).unwrap();
    drop(joiners);
    let mut rows = vec![first];
    for ((_, _, mut seq), l) in joining.into_iter().zip(logits) {
        let mut l = l.expect("room in the batch");
        seq.next = seq.picker.next_token(&mut l).unwrap();
        rows.push(seq);
    }
    assert_eq!(batch.len(), 4);
    let mut done = Vec::new();
    while !rows.is_empty() {
        let keep: Vec<bool> = rows.iter().map(|r| r.next.is_some()).collect();
        let order = batch.retain(&keep).unwrap();
        let (live, finished) = regroup_rows(rows, &order);
        done.extend(finished);
        rows = live;
        if rows.is_empty() {
            break;
        }
        let tokens: Vec<u32> = rows.iter().map(|r| r.next.unwrap()).collect();
        for (r, mut l) in rows
            .iter_mut()
            .zip(g.batch_step(&mut batch, &tokens).unwrap())
        {
            r.next = r.picker.next_token(&mut l).unwrap();
        }
    }
    assert_eq!(done.len(), 4);
    for s in &done {
        assert_eq!(text_only(s.picker.generated()), s.expected);
    }
}
