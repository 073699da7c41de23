//! Cache blocking and threading, shared by every engine.
//!
//! The output is cut into jobs of up to [`MC`] rows × a range of B panels;
//! jobs run on the one rayon pool. A job walks the depth in chunks (`KC`
//! words): it packs its A rows for the chunk into the engine's layout (L2
//! sized), then for each B panel (its chunk, 16 KiB, stays in L1 while every
//! micro-panel of A passes over it) runs the engine over all its rows. The
//! first chunk writes the output, later chunks add to it; after the last
//! chunk an optional epilogue (the int8 corrections and scales) rewrites the
//! finished rows of the panel while they are in cache. A may also come packed
//! for the whole call ([`AOperand::Packed`], see [`super::prepack`]); the jobs
//! then read their blocks from it.

use rayon::prelude::*;

use super::amx;
use super::engine::Engine;
use super::kernel_portable::{self, Tile};
use super::pack_a::{with_packer, ALayout, APacker, ASource};
use super::packed::{PanelLayout, NR};
use super::prepack::Blocking;
use super::Precision;
use crate::parallel;

/// Rows of A per job (a multiple of every engine's micro-panel height).
pub(crate) const MC: usize = 192;

/// B panels whose finished outputs one epilogue call covers (128 columns:
/// an `MC`-row group is 96 KiB of f32, resident in L2).
const EPILOGUE_PANELS: usize = 4;

/// [`EPILOGUE_PANELS`] on the tile unit: every CPU with AMX has 2 MiB of L2
/// per core, so 512 columns (384 KiB per `MC`-row group) stay resident, and
/// a quarter of the calls saves their per-call work (the bias / GELU
/// program's set-up). Whisper tiny.en int8 encoder at 2 threads on the
/// Xeon with AMX, five interleaved rounds: 54.8–59.6 → 51.1–56.3 ms.
const AMX_EPILOGUE_PANELS: usize = 16;

/// Depth words per chunk on the tile unit (2,048 bf16 or 4,096 int8
/// values): each further chunk stores a block's sums and loads them back,
/// so deeper chunks measured faster on the lent Xeon — 256 → 512 words
/// +20–40 % at 2048³ (blocks then finished through an L1 scratch); 512 →
/// 1,024 with packed A on cache lines and the sums stored by the tiles,
/// 2048³ bf16 +12–15 % (1 and 2 threads), 1500 × 384 × 1536 +3 %, 2,048
/// words no further.
const AMX_KC: usize = 1024;

/// Below this many multiply-adds the product runs on the calling thread.
const MIN_PARALLEL_MACS: usize = 1 << 21;

/// Rewrites finished outputs: called with a row, the first column and that
/// row's words for the columns of up to [`EPILOGUE_PANELS`] (on AMX
/// [`AMX_EPILOGUE_PANELS`]) panels.
pub(crate) type Epilogue<'a> = &'a (dyn Fn(usize, usize, &mut [u32]) + Sync);

/// The A operand of a call.
#[derive(Clone, Copy)]
pub(crate) enum AOperand<'a> {
    /// Rows packed by each job as it needs them.
    Rows(&'a dyn ASource),
    /// Already packed for the whole call in the layout of [`Gemm::blocking`].
    Packed(&'a [u32]),
}

/// Everything one GEMM call needs.
pub(crate) struct Gemm<'a> {
    pub engine: Engine,
    pub precision: Precision,
    /// Rows of A and of the output.
    pub m: usize,
    pub a: AOperand<'a>,
    pub b_layout: PanelLayout,
    pub b: &'a [u32],
    pub epilogue: Option<Epilogue<'a>>,
}

/// Output pointer shared by the jobs (each writes disjoint rows × columns).
#[derive(Clone, Copy)]
struct OutPtr(*mut u32);
// SAFETY: jobs write disjoint regions of the output.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl Gemm<'_> {
    fn layout(&self) -> ALayout {
        self.blocking().layout
    }

    /// How this call walks A (see [`blocking`]).
    pub fn blocking(&self) -> Blocking {
        blocking(self.engine, &self.b_layout)
    }

    /// Into how many column ranges each block of [`MC`] rows is cut: one
    /// for small products or one thread, else enough for about three jobs
    /// per thread. With more than one, every job of a row block would pack
    /// the same A rows, so callers pack A once for the call instead.
    pub fn splits(&self) -> usize {
        let m = self.m;
        let macs = m
            .saturating_mul(self.b_layout.n)
            .saturating_mul(self.b_layout.k);
        let threads = parallel::num_threads();
        if macs < MIN_PARALLEL_MACS || threads == 1 {
            1
        } else {
            (3 * threads)
                .div_ceil(m.div_ceil(MC))
                .clamp(1, self.b_layout.panels)
        }
    }

    /// Runs the product into `out` (`m × n` words, row-major).
    pub fn run(&self, out: &mut [u32]) {
        let (m, n) = (self.m, self.b_layout.n);
        assert_eq!(
            out.len(),
            m * n,
            "gemm: output has {} elements, expected {m}x{n}",
            out.len()
        );
        if m == 0 || n == 0 {
            return;
        }
        let panels = self.b_layout.panels;
        let row_blocks = m.div_ceil(MC);
        let splits = self.splits();
        let jobs = row_blocks * splits;
        let out_ptr = OutPtr(out.as_mut_ptr());
        let job = |j: usize| {
            let (rb, s) = (j / splits, j % splits);
            let i0 = rb * MC;
            let rows = MC.min(m - i0);
            let (p0, p1) = (s * panels / splits, (s + 1) * panels / splits);
            let o = out_ptr;
            // SAFETY: this job alone writes rows i0..i0+rows, panels p0..p1.
            unsafe { self.job(o.0, i0, rows, p0, p1) };
        };
        if jobs == 1 {
            job(0);
        } else {
            parallel::pool().install(|| (0..jobs).into_par_iter().for_each(job));
        }
    }

    /// Rows `i0 .. i0 + rows` × panels `p0 .. p1`.
    ///
    /// # Safety
    /// `out` addresses the `m × n` output; no other job touches this region.
    unsafe fn job(&self, out: *mut u32, i0: usize, rows: usize, p0: usize, p1: usize) {
        // SAFETY: the caller's contract.
        with_packer(|packer| unsafe { self.job_with(packer, out, i0, rows, p0, p1) })
    }

    /// [`Self::job`] packing A with `packer`.
    ///
    /// # Safety
    /// As [`Self::job`].
    unsafe fn job_with(
        &self,
        packer: &mut APacker,
        out: *mut u32,
        i0: usize,
        rows: usize,
        p0: usize,
        p1: usize,
    ) {
        let n = self.b_layout.n;
        let blocking = self.blocking();
        let mut emulated =
            matches!(self.engine, Engine::AmxEmulated).then(super::amx_emulated::Emulated::new);
        // One tile configuration for the whole job, not one per panel.
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Engine::Amx` is chosen only where its tiles are permitted.
        let _tiles = (self.engine == Engine::Amx).then(|| unsafe { amx::HeldTiles::hold() });
        let chunks = blocking.chunks();
        let epilogue_panels = match self.engine {
            Engine::Amx => AMX_EPILOGUE_PANELS,
            _ => EPILOGUE_PANELS,
        };
        for ci in 0..chunks {
            let (g0, gn) = blocking.chunk(ci);
            let abuf = match self.a {
                AOperand::Rows(src) => packer.pack(src, blocking.layout, (i0, rows), (g0, gn)),
                AOperand::Packed(words) => {
                    &words[blocking.block_offset(i0, rows, g0)..][..blocking.layout.words(rows, gn)]
                }
            };
            for p in p0..p1 {
                let j0 = p * NR;
                let nc = NR.min(n - j0);
                let t = Tile {
                    precision: self.precision,
                    mr: 0,
                    kg: gn,
                    a: abuf.as_ptr(),
                    b: self.b[self.b_layout.offset(p, g0)..].as_ptr(),
                    // SAFETY: (i0, j0) is inside the output.
                    c: unsafe { out.add(i0 * n + j0) },
                    ldc: n,
                    nc,
                    accumulate: ci > 0,
                };
                // SAFETY: the packed A block, the B panel chunk and the
                // output region match `t`; the engine runs on this CPU.
                unsafe {
                    match (&mut emulated, self.engine) {
                        (Some(em), _) => amx::rows(em, t, rows),
                        #[cfg(target_arch = "x86_64")]
                        (None, Engine::Amx) => amx::rows(&mut amx::Hardware, t, rows),
                        (None, _) => self.vector_rows(t, rows),
                    }
                }
                // The epilogue runs over groups of panels (wide enough to
                // amortise its per-call work, small enough to stay in L2).
                let group_done = (p + 1 - p0).is_multiple_of(epilogue_panels) || p + 1 == p1;
                if ci + 1 == chunks && group_done {
                    if let Some(epi) = self.epilogue {
                        let g0 = p0 + (p - p0) / epilogue_panels * epilogue_panels;
                        let (c0, c1) = (g0 * NR, j0 + nc);
                        for r in 0..rows {
                            // SAFETY: row i0 + r, columns c0..c1 belong to this job.
                            let row = unsafe {
                                std::slice::from_raw_parts_mut(out.add((i0 + r) * n + c0), c1 - c0)
                            };
                            epi(i0 + r, c0, row);
                        }
                    }
                }
            }
        }
    }

    /// The vector engines: one micro-kernel call per micro-panel of rows.
    ///
    /// # Safety
    /// As [`Self::job`]; `t.a` is the broadcast-layout block of `rows` rows.
    unsafe fn vector_rows(&self, t: Tile, rows: usize) {
        let mr = match self.layout() {
            ALayout::Broadcast { mr } => mr,
            ALayout::Tiles => unreachable!("AMX blocks run in amx::rows"),
        };
        for r0 in (0..rows).step_by(mr) {
            let tile = Tile {
                mr: mr.min(rows - r0),
                // SAFETY: micro-panel r0 starts at word r0 * kg of the block.
                a: unsafe { t.a.add(r0 * t.kg) },
                // SAFETY: row r0 of the tile's output region.
                c: unsafe { t.c.add(r0 * t.ldc) },
                ..t
            };
            // SAFETY: forwarded; the engine was checked to run on this CPU.
            unsafe {
                match self.engine {
                    #[cfg(target_arch = "x86_64")]
                    Engine::Avx512 => super::kernel_avx512::tile(tile),
                    #[cfg(target_arch = "x86_64")]
                    Engine::Avx2 if tile.precision == Precision::Int8 => {
                        super::kernel_avx2::int8_tile(tile)
                    }
                    #[cfg(target_arch = "x86_64")]
                    Engine::Avx2 => kernel_portable::tile_avx2(tile),
                    _ => kernel_portable::tile_portable(tile),
                }
            }
        }
    }
}

/// The A layout of `engine`, depth words per chunk and the depth it walks
/// for B of `b_layout` (AMX reads the zero padding up to a whole tile step;
/// the others stop at the data).
pub(crate) fn blocking(engine: Engine, b_layout: &PanelLayout) -> Blocking {
    let (layout, kc, depth) = match engine {
        Engine::Amx | Engine::AmxEmulated => (ALayout::Tiles, AMX_KC, b_layout.groups),
        Engine::Avx512 => (
            ALayout::Broadcast { mr: mr_avx512() },
            128,
            b_layout.real_groups(),
        ),
        Engine::Avx2 | Engine::Portable => (
            ALayout::Broadcast {
                mr: kernel_portable::MR,
            },
            128,
            b_layout.real_groups(),
        ),
    };
    Blocking { layout, kc, depth }
}

/// Micro-panel height of the AVX-512 engine.
fn mr_avx512() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        super::kernel_avx512::MR
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        kernel_portable::MR
    }
}
