//! A loaded language model: configuration, tokenizer, chat template,
//! parameters and the compiled decoder graphs. Share it across threads with
//! `Arc`; every generation keeps its own KV caches ([`Generator`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use emily::Tensor;
use emily_kernels::quant;
use emily_nn::{fast_kernels, Forward, Mode, Model, ParamStore, Report, State};

use super::chat::builtin_template;
use super::config::LlmConfig;
use super::graph::{decoder_model, names, GraphOptions};
use super::params::param_store_placed;
use super::{ChatTemplate, LlmError, LlmTokenizer};
use crate::gguf::GgufFile;

/// Loading options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Positions of the static KV cache (prompt plus generated tokens);
    /// `None` = the model's context length, at most 4096.
    pub context: Option<usize>,
    /// Run norms, RoPE and attention as fused kernels
    /// (`emily_nn::fast_kernels::apply`); `false` keeps the composed graph.
    pub fast_kernels: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            context: None,
            fast_kernels: true,
        }
    }
}

/// A graph variant built and compiled on first use.
struct Variant {
    model: Model,
    forward: Forward,
}

/// A loaded GGUF language model.
pub struct LlmModel {
    path: PathBuf,
    config: LlmConfig,
    tokenizer: Arc<LlmTokenizer>,
    template: Option<Arc<ChatTemplate>>,
    params: ParamStore,
    options: LoadOptions,
    cache: usize,
    step: Variant,
    report: Option<Report>,
    all_positions: OnceLock<Result<Variant, String>>,
    /// Padded-batch graphs by cache length, built on first use: the
    /// context's for a running batch's steps, shorter ones for rows joining
    /// it, prefilled into caches of the positions they fill
    /// ([`LlmModel::join_cache`]).
    padded_batch: Mutex<Vec<(usize, Arc<Variant>)>>,
}

impl std::fmt::Debug for LlmModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmModel")
            .field("path", &self.path)
            .field("config", &self.config)
            .field("cache", &self.cache)
            .field("fast_kernels", &self.options.fast_kernels)
            .finish()
    }
}

impl LlmModel {
    /// Loads the GGUF file at `path` (the weights a decode step streams are
    /// copied onto huge pages, see `resident`); the heap the parsed metadata
    /// and the tokenizer's construction freed goes back to the system.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<LlmModel, LlmError> {
        let file = GgufFile::open(path.as_ref())?;
        let model = LlmModel::from_gguf_placed(&file, options, true);
        drop(file);
        super::heap::release_free_heap();
        model
    }

    /// Builds the model from a parsed file (tensors stay borrowed from its
    /// bytes where their type allows).
    pub fn from_gguf(file: &GgufFile, options: LoadOptions) -> Result<LlmModel, LlmError> {
        LlmModel::from_gguf_placed(file, options, false)
    }

    /// [`LlmModel::from_gguf`]; with `huge_pages`, the streamed weights are
    /// copied from the file at `file.path()` onto transparent huge pages
    /// (see `params::param_store_placed`).
    fn from_gguf_placed(
        file: &GgufFile,
        options: LoadOptions,
        huge_pages: bool,
    ) -> Result<LlmModel, LlmError> {
        let config = LlmConfig::from_gguf(file)?;
        let cache = options.context.unwrap_or(config.context.min(4096));
        if cache == 0 {
            return Err(LlmError::Input(
                "the context must hold at least one token".into(),
            ));
        }
        let tokenizer = LlmTokenizer::from_gguf(file)?;
        let text = |id: Option<u32>| {
            id.and_then(|i| tokenizer.token(i))
                .unwrap_or_default()
                .to_string()
        };
        let source = tokenizer
            .chat_template()
            .unwrap_or_else(|| builtin_template(config.arch));
        let template = Some(Arc::new(ChatTemplate::new(
            source,
            &text(tokenizer.bos()),
            &text(tokenizer.eos()),
        )?));
        let base = decoder_model(&config, GraphOptions::step(cache))?;
        if huge_pages {
            // The tokenizer's transient heap goes back before the weights
            // become resident, so the two never add up in the peak RSS.
            super::heap::release_free_heap();
        }
        let params = param_store_placed(file, &[&base], huge_pages)?;
        LlmModel::assemble(
            file.path().to_path_buf(),
            config,
            Arc::new(tokenizer),
            template,
            params,
            LoadOptions {
                context: Some(cache),
                ..options
            },
        )
    }

    /// The same model and weights (shared, not copied) with the fused
    /// kernels switched on or off.
    pub fn with_fast_kernels(&self, fast_kernels: bool) -> Result<LlmModel, LlmError> {
        LlmModel::assemble(
            self.path.clone(),
            self.config.clone(),
            self.tokenizer.clone(),
            self.template.clone(),
            self.params.clone(),
            LoadOptions {
                fast_kernels,
                ..self.options
            },
        )
    }

    fn assemble(
        path: PathBuf,
        config: LlmConfig,
        tokenizer: Arc<LlmTokenizer>,
        template: Option<Arc<ChatTemplate>>,
        params: ParamStore,
        options: LoadOptions,
    ) -> Result<LlmModel, LlmError> {
        let cache = options.context.unwrap_or(config.context.min(4096));
        let base = decoder_model(&config, GraphOptions::step(cache))?;
        let (model, report) = if options.fast_kernels {
            let r = fast_kernels::apply(&base)?;
            (r.model, Some(r.report))
        } else {
            (base, None)
        };
        let forward = model.build(&params, Mode::Inference)?;
        Ok(LlmModel {
            path,
            config,
            tokenizer,
            template,
            params,
            options,
            cache,
            step: Variant { model, forward },
            report,
            all_positions: OnceLock::new(),
            padded_batch: Mutex::new(Vec::new()),
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sizes and options.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &LlmTokenizer {
        &self.tokenizer
    }

    /// The chat template: the file's, else the built-in one for its
    /// architecture ([`super::chat::builtin_template`]).
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_deref()
    }

    /// Positions of the KV cache.
    pub fn context(&self) -> usize {
        self.cache
    }

    /// Whether the graphs run fused kernels.
    pub fn fast_kernels(&self) -> bool {
        self.options.fast_kernels
    }

    /// The generation-step graph.
    pub fn step_model(&self) -> &Model {
        &self.step.model
    }

    /// What the fast-kernels rewrite did, if applied.
    pub fn fast_kernels_report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// The parameters (GGUF tensor names).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Plans the step graph has compiled (one per prompt bucket, one for decoding).
    pub fn step_plans(&self) -> usize {
        self.step.forward.num_plans()
    }

    /// Plans the batched graphs have compiled (one per input shape: each
    /// prefill width and row count, each batch size's decode step), over
    /// every cache length built so far.
    pub fn batch_plans(&self) -> usize {
        let built = self.padded_batch.lock().unwrap_or_else(|e| e.into_inner());
        built.iter().map(|(_, v)| v.forward.num_plans()).sum()
    }

    fn variant<'a>(
        &'a self,
        slot: &'a OnceLock<Result<Variant, String>>,
        opts: GraphOptions,
    ) -> Result<&'a Variant, LlmError> {
        let v = slot.get_or_init(|| self.build_variant(opts).map_err(|e| e.to_string()));
        v.as_ref().map_err(|e| LlmError::Input(e.clone()))
    }

    /// The decoder graph for `opts`, rewritten to fused kernels when the
    /// model runs them, built on the shared parameters.
    fn build_variant(&self, opts: GraphOptions) -> Result<Variant, LlmError> {
        let base = decoder_model(&self.config, opts)?;
        let model = if self.options.fast_kernels {
            fast_kernels::apply(&base)?.model
        } else {
            base
        };
        let forward = model.build(&self.params, Mode::Inference)?;
        Ok(Variant { model, forward })
    }

    /// The cache length a row joining a batch at cache position `offset` is
    /// prefilled in: an eighth of the context (a power of two, at least 16)
    /// while the batch is that young, else the whole context. Its caches
    /// then join the batch's zero-padded
    /// ([`emily::Tensor::append_rows_zero_padded`]). Two lengths, not one per
    /// power of two: each length compiles its own plans (~0.3 s apiece, paid
    /// by the first request that needs one).
    pub(crate) fn join_cache(&self, offset: usize) -> usize {
        let short = (self.cache / 8).next_power_of_two().max(16).min(self.cache);
        if offset <= short {
            short
        } else {
            self.cache
        }
    }

    /// Runs the step graph on `tokens` (one row) at cache position `offset`,
    /// the real tokens being the first `len`; returns the logits of
    /// position `len − 1`.
    pub(crate) fn step(
        &self,
        tokens: &[u32],
        len: usize,
        offset: usize,
        state: &mut State,
    ) -> Result<Vec<f32>, LlmError> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let ids = Tensor::from_slice(&ids, &[1, tokens.len()])?;
        let off = Tensor::from_slice(&[offset as i64], &[])?;
        let lens = Tensor::from_slice(&[len as i64], &[1])?;
        on_pool(|| {
            let out = self.step.forward.call_with_state(
                &[
                    (names::INPUT_IDS, &ids),
                    (names::OFFSET, &off),
                    (names::LENGTHS, &lens),
                ],
                state,
            )?;
            Ok(out[names::LOGITS].to_vec::<f32>()?)
        })
    }

    /// Logits at every position of `tokens` (teacher forcing), `(T, vocab)`
    /// row-major: row `t` predicts token `t + 1`. Scoring keeps the
    /// activations of quantized products in f32 (exact products with the
    /// dequantized weights), where generation quantizes them to 8 bits.
    pub fn logits_all(&self, tokens: &[u32]) -> Result<Vec<f32>, LlmError> {
        self.check_prompt(tokens.len())?;
        let v = self.variant(&self.all_positions, GraphOptions::all_positions(self.cache))?;
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let ids = Tensor::from_slice(&ids, &[1, tokens.len()])?;
        let off = Tensor::from_slice(&[0i64], &[])?;
        on_pool_exact(true, || {
            let out = v
                .forward
                .call(&[(names::INPUT_IDS, &ids), (names::OFFSET, &off)])?;
            Ok(out[names::LOGITS].to_vec::<f32>()?)
        })
    }

    /// Mean negative log-likelihood (nats per token) of `tokens[1..]` given
    /// their prefixes.
    pub fn mean_nll(&self, tokens: &[u32]) -> Result<f64, LlmError> {
        if tokens.len() < 2 {
            return Err(LlmError::Input("scoring needs at least two tokens".into()));
        }
        let logits = self.logits_all(tokens)?;
        let v = self.config.vocab;
        let mut total = 0.0;
        for t in 0..tokens.len() - 1 {
            let row = &logits[t * v..(t + 1) * v];
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            total += lse - row[tokens[t + 1] as usize] as f64;
        }
        Ok(total / (tokens.len() - 1) as f64)
    }

    /// Runs the padded-batch graph: `rows` token rows of equal length,
    /// left-padded, `pads[b]` pad positions in row `b`; returns `(B, vocab)`.
    pub(crate) fn batch_step(
        &self,
        rows: &[Vec<u32>],
        pads: &[usize],
        offset: usize,
        state: &mut State,
    ) -> Result<Vec<f32>, LlmError> {
        self.batch_step_in(self.cache, rows, pads, offset, state)
    }

    /// [`LlmModel::batch_step`] on caches of `cache` positions (the
    /// context's, or a [`LlmModel::join_cache`] length holding `offset`
    /// plus the rows' length).
    pub(crate) fn batch_step_in(
        &self,
        cache: usize,
        rows: &[Vec<u32>],
        pads: &[usize],
        offset: usize,
        state: &mut State,
    ) -> Result<Vec<f32>, LlmError> {
        let (b, t) = (rows.len(), rows[0].len());
        if offset + t > cache || cache > self.cache {
            return Err(LlmError::Input(format!(
                "{t} tokens at position {offset} do not fit a cache of {cache} positions"
            )));
        }
        let v = self.padded_batch_variant(cache)?;
        let ids: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
        let ids = Tensor::from_slice(&ids, &[b, t])?;
        let off = Tensor::from_slice(&[offset as i64], &[])?;
        let mut keep = vec![1i64; b * cache];
        for (row, &p) in pads.iter().enumerate() {
            keep[row * cache..row * cache + p].fill(0);
        }
        let keep = Tensor::from_slice(&keep, &[b, cache])?;
        on_pool(|| {
            let out = v.forward.call_with_state(
                &[
                    (names::INPUT_IDS, &ids),
                    (names::OFFSET, &off),
                    (names::KEY_PADDING, &keep),
                ],
                state,
            )?;
            Ok(out[names::LOGITS].to_vec::<f32>()?)
        })
    }

    /// The padded-batch graph over caches of `cache` positions, built once.
    fn padded_batch_variant(&self, cache: usize) -> Result<Arc<Variant>, LlmError> {
        let mut built = self.padded_batch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, v)) = built.iter().find(|(c, _)| *c == cache) {
            return Ok(v.clone());
        }
        let v = Arc::new(self.build_variant(GraphOptions::padded_batch(cache))?);
        built.push((cache, v.clone()));
        Ok(v)
    }

    pub(crate) fn check_prompt(&self, len: usize) -> Result<(), LlmError> {
        if len == 0 {
            return Err(LlmError::Input("the prompt is empty".into()));
        }
        if len > self.cache {
            return Err(LlmError::Input(format!(
                "the prompt has {len} tokens, the context holds {}",
                self.cache
            )));
        }
        Ok(())
    }

    /// The smallest prompt bucket (a power of two, at least 8, at most the
    /// cache) holding `len` tokens: prompts are right-padded to it so the
    /// step graph compiles a handful of plans, not one per length.
    pub(crate) fn bucket(&self, len: usize) -> usize {
        len.next_power_of_two().max(8).min(self.cache).max(len)
    }
}

/// Runs one forward pass on a worker of the kernels' pool. A pass issues
/// hundreds of small parallel kernels; started from the caller's own thread
/// each would hand its work to the pool and sleep until it is done (a
/// thread wake-up per kernel, and with one thread all of them on the other
/// side of a switch), while inside the pool they split in place. The
/// caller's choice of exact quantized products
/// ([`emily_kernels::quant::with_exact_products`]) goes with the pass.
fn on_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    on_pool_exact(quant::exact_products(), f)
}

/// [`on_pool`] with exact quantized products on or off.
fn on_pool_exact<T: Send>(exact: bool, f: impl FnOnce() -> T + Send) -> T {
    emily_kernels::parallel::pool().install(|| quant::with_exact_products(exact, f))
}
