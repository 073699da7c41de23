//! Running a model's served paths once before its first request: a path's
//! first use compiles its plans (one per input shape) inside the request
//! that meets it — a fresh `emily serve`'s first chat request took 270–313
//! ms against ~150 steady, and its first burst of four 750 ms each.

use super::batch::BatchRequest;
use super::generate::GenerateOptions;
use super::model::LlmModel;
use super::running::RunningBatch;
use super::LlmError;

/// Prompt lengths whose shapes the warm-up compiles: the single-sequence
/// prefill buckets chat prompts fall in, and the widths the prefill of a
/// row joining a young batch is cut into (see [`RunningBatch::can_join`]).
const WIDTHS: [usize; 4] = [16, 32, 64, 128];

/// Runs what serving `model` in batches of up to `rows` rows runs: a prompt
/// of each chat prefill bucket from 16 to 128 tokens prefilled alone; then
/// a batch started alone, which rows join while it is young with prompts of
/// 8 tokens up to half its join cache (each join's prefill width), then
/// more rows a step apart up to `rows` (each batch size's decode step),
/// every row to its token limit (rows leave one by one). Not covered:
/// batches started by several requests at once (a shape per count and
/// bucket) and joins to a batch past its young positions.
pub fn warm_up(model: &LlmModel, rows: usize) -> Result<(), LlmError> {
    let request = |len: usize, max_tokens: usize| BatchRequest {
        // Any token will do: only the shapes matter.
        prompt: vec![0; len],
        opts: GenerateOptions {
            max_tokens,
            model_stop_tokens: false,
            ..GenerateOptions::default()
        },
    };
    let context = model.context();
    for w in WIDTHS.into_iter().filter(|&w| w < context) {
        let mut alone = RunningBatch::new(model);
        alone.start(&[(0, &request(w, 1))])?;
        alone.advance(|_, _| true)?;
    }
    // Joins stay young while the batch's position is within the join cache.
    let young = model.join_cache(0);
    let joins: Vec<usize> = std::iter::successors(Some(8), |w| Some(w * 2))
        .take_while(|&w| 2 * w <= young)
        .collect();
    let first = joins.last().copied().unwrap_or(8);
    let steps = 2 * rows + joins.len() + 2;
    if first + steps > context {
        return Ok(());
    }
    let mut batch = RunningBatch::with_max_rows(model, rows);
    batch.start(&[(0, &request(first, steps))])?;
    let mut id = 1;
    let mut join = |batch: &mut RunningBatch<'_>, r: &BatchRequest| -> Result<(), LlmError> {
        while batch.len() >= rows || !batch.can_join(r) {
            if batch.is_empty() {
                return Ok(());
            }
            batch.advance(|_, _| true)?;
        }
        batch.join(id, r)?;
        id += 1;
        Ok(())
    };
    for &w in &joins {
        join(&mut batch, &request(w, 1))?;
    }
    for _ in 1..rows {
        // A step at each batch size.
        batch.advance(|_, _| true)?;
        join(&mut batch, &request(8, rows + 1))?;
    }
    while !batch.is_empty() {
        batch.advance(|_, _| true)?;
    }
    Ok(())
}
