//! The AMX tile program: 32 × 32 output blocks from two A tiles and two B
//! tiles per 16 words of depth, over the same packed B as every engine.
//! Whole blocks are stored by the tile unit straight into the output (and,
//! on later depth chunks, loaded from it to add to); the partial blocks at
//! the edges are finished through an L1 scratch.
//!
//! Tile registers: 0–3 accumulate the four 16 × 16 quarters of the output
//! block, 4–5 hold A (rows 0–15 and 16–31: 16 rows × 64 bytes of
//! consecutive words, read from the AMX A layout), 6–7 hold B (16 word rows
//! × 16 columns, read from the packed panel at a 128-byte stride). Every
//! tile is configured 16 rows × 64 bytes, so one configuration serves the
//! whole call. The program is written once against [`TileOps`]: the
//! hardware implementation issues the instructions through `asm!`, and
//! [`super::amx_emulated`] models them in plain Rust so the same blocking,
//! addressing and configuration are tested on CPUs without AMX.

use super::amx_write::{write_block_portable, Block};
use super::kernel_portable::Tile;
use super::pack_a::AMX_ROWS;
use super::packed::NR;
use super::Precision;

/// Words of depth per tile step (64 bytes of an A row).
pub(crate) const STEP: usize = 16;

/// The 64-byte tile configuration: palette 1, tiles 0–7 of 16 rows × 64 bytes.
#[repr(C, align(64))]
pub(crate) struct TileConfig(pub [u8; 64]);

impl TileConfig {
    pub(crate) fn all_16x64() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1; // palette
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes()); // bytes per row
            c[48 + t] = 16; // rows
        }
        TileConfig(c)
    }
}

/// What one tile dot product multiplies: the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dot {
    /// `tdpbf16ps`: bf16 pairs, f32 sums (the bf16 GEMM).
    Bf16,
    /// `tdpbusd`: u8 (A) by s8 (B) quadruples, i32 sums (the int8 GEMM).
    U8S8,
    /// `tdpbsud`: s8 (A) by u8 (B) quadruples, i32 sums (the int8 attention
    /// value product of [`crate::fast`]).
    S8U8,
    /// `tdpbssd`: s8 by s8 quadruples, i32 sums (the int8 attention scores
    /// of [`crate::fast`]: keys by queries, both signed).
    S8S8,
}

impl From<Precision> for Dot {
    fn from(p: Precision) -> Dot {
        match p {
            Precision::Bf16 => Dot::Bf16,
            Precision::Int8 => Dot::U8S8,
        }
    }
}

/// The AMX operations the program uses, on tile registers `0..8`.
pub(crate) trait TileOps {
    /// `ldtilecfg` (the hardware's configurations nest: see [`Hardware`]).
    unsafe fn configure(&mut self, cfg: &TileConfig);
    /// `tilezero tmmT`.
    unsafe fn zero<const T: u8>(&mut self);
    /// `tileloadd tmmT, [p + stride·row]` (16 rows × 64 bytes).
    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize);
    /// `tilestored [p + stride·row], tmmT` (the program stores tiles 0–3).
    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize);
    /// `tdpbf16ps` / `tdpbusd` / `tdpbsud tmmC, tmmA, tmmB`.
    unsafe fn dot<const C: u8, const A: u8, const B: u8>(&mut self, d: Dot);
    /// `tilerelease` (of the outermost configuration, on the hardware).
    unsafe fn release(&mut self);
    /// Copies (or, with `accumulate`, adds) a finished block from the
    /// scratch (row stride [`NR`]) into `into`: f32 sums for bf16, wrapping
    /// i32 sums for int8. The model does it in plain Rust.
    ///
    /// # Safety
    /// `into` addresses `rows` writable rows of `cols` words at stride `ldc`.
    unsafe fn write_block(
        &mut self,
        src: &[u32; AMX_ROWS * NR],
        into: Block,
        accumulate: bool,
        p: Precision,
    ) {
        // SAFETY: forwarded.
        unsafe { write_block_portable(src, into, accumulate, p) }
    }
}

/// Words between the upper and lower A tile of a step, and between steps,
/// in the tile-major A layout (each 16 × 16-word tile one contiguous KiB).
const A_HALF: usize = 16 * STEP;
const A_STEP: usize = AMX_ROWS * STEP;
/// Byte stride of A tile rows (64 bytes: the rows of a tile are contiguous).
const A_ROW_BYTES: usize = STEP * 4;

/// One finished 32 × 32 output block (row stride [`NR`] words), aligned
/// for the tile stores and small enough to stay in L1.
#[repr(C, align(64))]
struct BlockScratch([u32; AMX_ROWS * NR]);

/// Where a block's sums go: 32 rows of 32 words at `ptr`, `stride` bytes apart.
#[derive(Clone, Copy)]
struct Sums {
    ptr: *mut u32,
    stride: usize,
    /// Whether the accumulators start from the words there (a later depth
    /// chunk adding to an earlier one's sums) rather than from zero.
    add: bool,
    /// Where the next block's sums go (rows `stride` apart; null: nowhere
    /// known): its lines are asked for, for writing, while this block's
    /// products run (see [`prefetch_next`]).
    next: *const u32,
}

/// The deepest block (in steps) that asks for the next block's output lines.
const PREFETCH_MAX_STEPS: usize = 32;

/// Output lines of one block: 32 rows of 128 bytes.
const BLOCK_LINES: usize = AMX_ROWS * NR * 4 / 64;

/// Asks for the lines of step `s` (of `steps`) of the next block's output,
/// for writing: its share of the block's [`BLOCK_LINES`], so a few are in
/// flight at a time. The tile stores of a block whose output lines are not
/// in cache wait on every line's ownership (on the Xeon with AMX, a fresh
/// 9.2 MB output took 1,140 GFLOP/s at 1500 × 1536 × 384 bf16, one thread,
/// against 1,640 writing the same rows over and over); a burst of all 64
/// lines at the start of the block did not help, spread over its steps
/// they run beside the products: +4–7 % at one and two threads, int8
/// +8–13 %. Deep blocks (more than [`PREFETCH_MAX_STEPS`]) write rarely
/// enough that the extra requests only compete with their operand streams
/// (2048³ bf16, 64 steps a block: −4 to −9 %), so they ask for nothing.
#[inline(always)]
fn prefetch_next(out: &Sums, s: usize, steps: usize) {
    if out.next.is_null() || steps > PREFETCH_MAX_STEPS {
        return;
    }
    let per = BLOCK_LINES.div_ceil(steps);
    for l in s * per..((s + 1) * per).min(BLOCK_LINES) {
        let (row, half) = (l / 2, l % 2);
        let p = (out.next as *const u8).wrapping_add(row * out.stride + half * 64);
        crate::prefetch::line(p, crate::prefetch::Hint::Write);
    }
}

/// One output block `A · B` over `steps × STEP` words of depth into `out`:
/// `a` is a 32-row micro-panel in the tile-major layout, `b` the packed
/// panel at its first word row.
///
/// The tile unit stores whole blocks into the output itself. (An earlier
/// version finished every block through an L1 scratch and vector stores,
/// which measured faster only while the packed A sat 32 bytes off its cache
/// line and the tile loop was the bottleneck; with aligned operands the
/// scratch's copy left the tile unit idle: 1500 × 1536 × 384 bf16 on the
/// Xeon with AMX, 1 thread, 970–1,030 → 1,030–1,140 GFLOP/s.)
///
/// # Safety
/// The tiles are configured with [`TileConfig::all_16x64`]; `a` addresses
/// `steps` pairs of A tiles; `b` addresses `steps × STEP` rows of `NR` words;
/// `out` addresses 32 rows of 32 words.
unsafe fn block<O: TileOps>(
    ops: &mut O,
    p: Precision,
    a: *const u32,
    b: *const u32,
    steps: usize,
    out: Sums,
) {
    let (o, os) = (out.ptr, out.stride);
    let lower = os / 4 * 16;
    let d = Dot::from(p);
    // SAFETY: the caller's contract; every address below is inside `a`, `b` or `out`.
    unsafe {
        if out.add {
            ops.load::<0>(o.cast(), os);
            ops.load::<1>(o.add(16).cast(), os);
            ops.load::<2>(o.add(lower).cast(), os);
            ops.load::<3>(o.add(lower + 16).cast(), os);
        } else {
            ops.zero::<0>();
            ops.zero::<1>();
            ops.zero::<2>();
            ops.zero::<3>();
        }
        // Each load is placed right before the first product that reads it,
        // so a step's products start while its later tiles still load (the
        // tiles are not renamed: a load waits for the last reader of its
        // register). Measured on the Xeon with AMX: 5–10 % over loading all
        // four tiles first, one thread.
        for s in 0..steps {
            prefetch_next(&out, s, steps);
            let ak = a.add(s * A_STEP);
            let bk = b.add(s * STEP * NR);
            ops.load::<4>(ak.cast(), A_ROW_BYTES);
            ops.load::<6>(bk.cast(), NR * 4);
            ops.dot::<0, 4, 6>(d);
            ops.load::<7>(bk.add(16).cast(), NR * 4);
            ops.dot::<1, 4, 7>(d);
            ops.load::<5>(ak.add(A_HALF).cast(), A_ROW_BYTES);
            ops.dot::<2, 5, 6>(d);
            ops.dot::<3, 5, 7>(d);
        }
        ops.store::<0>(o.cast(), os);
        ops.store::<1>(o.add(16).cast(), os);
        ops.store::<2>(o.add(lower).cast(), os);
        ops.store::<3>(o.add(lower + 16).cast(), os);
    }
}

/// Runs the tile program over `rows` rows of an A block in the tile-major
/// AMX layout (`t.a`, `t.kg` words of depth, a multiple of [`STEP`])
/// against one B panel, writing (or adding) `rows × t.nc` outputs at `t.c`:
/// whole 32 × 32 blocks straight from the tiles, the partial blocks at the
/// edges through the L1 scratch, copied or added into the output.
///
/// # Safety
/// `ops` may execute tile instructions on this thread; the pointers address
/// the regions in [`Tile`] with the A block holding `ceil(rows / 32) × 32` rows.
pub(crate) unsafe fn rows<O: TileOps>(ops: &mut O, t: Tile, rows: usize) {
    debug_assert_eq!(t.kg % STEP, 0);
    let steps = t.kg / STEP;
    // Only partial blocks need the scratch (set up by the first of them).
    let mut scratch: Option<BlockScratch> = None;
    // SAFETY: the caller's contract.
    unsafe {
        ops.configure(&TileConfig::all_16x64());
        for r0 in (0..rows).step_by(AMX_ROWS) {
            let (a, c) = (t.a.add(r0 * t.kg), t.c.add(r0 * t.ldc));
            // The next block down this panel, or after the last the next
            // panel's first (past the job's columns, or past the output, it
            // is only a wasted hint: a prefetch never faults, and the address
            // is formed with wrapping arithmetic).
            let next = if r0 + AMX_ROWS < rows {
                c.wrapping_add(AMX_ROWS * t.ldc)
            } else {
                t.c.wrapping_add(NR)
            };
            if rows - r0 >= AMX_ROWS && t.nc == NR {
                let sums = Sums {
                    ptr: c,
                    stride: t.ldc * 4,
                    add: t.accumulate,
                    next,
                };
                block(ops, t.precision, a, t.b, steps, sums);
                continue;
            }
            let out = scratch.get_or_insert(BlockScratch([0; AMX_ROWS * NR]));
            let sums = Sums {
                ptr: out.0.as_mut_ptr(),
                stride: NR * 4,
                add: false,
                next: std::ptr::null(),
            };
            block(ops, t.precision, a, t.b, steps, sums);
            let into = Block {
                c,
                ldc: t.ldc,
                rows: AMX_ROWS.min(rows - r0),
                cols: t.nc,
            };
            ops.write_block(&out.0, into, t.accumulate, t.precision);
        }
        ops.release();
    }
}

/// `trips` rounds of four independent tile dot products on registers only
/// (tiles 0–3 accumulate, 4–7 hold zeros): the tile unit's peak.
///
/// # Safety
/// `ops` may execute tile instructions on this thread.
pub(crate) unsafe fn spin<O: TileOps>(ops: &mut O, p: Precision, trips: usize) {
    #[repr(C, align(64))]
    struct Zeros([u8; 1024]);
    let zeros = Zeros([0; 1024]);
    // SAFETY: the caller's contract; the loads read the 1 KiB of zeros.
    unsafe {
        ops.configure(&TileConfig::all_16x64());
        ops.zero::<0>();
        ops.zero::<1>();
        ops.zero::<2>();
        ops.zero::<3>();
        ops.load::<4>(zeros.0.as_ptr(), 64);
        ops.load::<5>(zeros.0.as_ptr(), 64);
        ops.load::<6>(zeros.0.as_ptr(), 64);
        ops.load::<7>(zeros.0.as_ptr(), 64);
        let d = Dot::from(p);
        for _ in 0..trips {
            ops.dot::<0, 4, 6>(d);
            ops.dot::<1, 4, 7>(d);
            ops.dot::<2, 5, 6>(d);
            ops.dot::<3, 5, 7>(d);
        }
        ops.release();
    }
}

/// The real tile unit, through `asm!`. Only constructed after
/// [`super::Engine::Amx`] was found usable (CPUID and the kernel's permission).
///
/// Configurations nest per thread: only the outermost `configure` issues
/// `ldtilecfg` and only the matching last `release` issues `tilerelease`
/// (every program here uses [`TileConfig::all_16x64`], and each one zeroes
/// or loads its accumulators itself). `ldtilecfg` waits for the tile unit
/// to drain, so a caller that runs many short programs holds the
/// configuration around them ([`HeldTiles`]): the GEMM configured once per
/// 32-column panel measured 3–8 % slower than once per job at 1500 × 1536 ×
/// 384 bf16 on the Xeon with AMX (a C probe of the same tile loop).
#[cfg(target_arch = "x86_64")]
pub(crate) struct Hardware;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// How many configurations of [`Hardware`] this thread holds.
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Holds the tile configuration of this thread from [`HeldTiles::hold`] to
/// its drop, so the programs run meanwhile configure and release nothing.
#[cfg(target_arch = "x86_64")]
pub(crate) struct HeldTiles(());

#[cfg(target_arch = "x86_64")]
impl HeldTiles {
    /// Configures the tiles (unless this thread holds them already).
    ///
    /// # Safety
    /// The tile-data permission was granted ([`super::Engine::Amx`] usable).
    pub(crate) unsafe fn hold() -> HeldTiles {
        // SAFETY: the caller's contract.
        unsafe { Hardware.configure(&TileConfig::all_16x64()) };
        HeldTiles(())
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for HeldTiles {
    fn drop(&mut self) {
        // SAFETY: `hold` configured (or nested in a held configuration).
        unsafe { Hardware.release() }
    }
}

#[cfg(target_arch = "x86_64")]
impl TileOps for Hardware {
    unsafe fn configure(&mut self, cfg: &TileConfig) {
        if HELD.with(|h| h.replace(h.get() + 1)) > 0 {
            return;
        }
        // SAFETY: the tile-data permission was granted; `cfg` is a valid palette-1 configuration.
        unsafe {
            std::arch::asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly))
        }
    }

    unsafe fn zero<const T: u8>(&mut self) {
        // SAFETY: tiles are configured.
        unsafe {
            match T {
                0 => std::arch::asm!("tilezero tmm0", options(nostack, nomem)),
                1 => std::arch::asm!("tilezero tmm1", options(nostack, nomem)),
                2 => std::arch::asm!("tilezero tmm2", options(nostack, nomem)),
                3 => std::arch::asm!("tilezero tmm3", options(nostack, nomem)),
                4 => std::arch::asm!("tilezero tmm4", options(nostack, nomem)),
                5 => std::arch::asm!("tilezero tmm5", options(nostack, nomem)),
                6 => std::arch::asm!("tilezero tmm6", options(nostack, nomem)),
                7 => std::arch::asm!("tilezero tmm7", options(nostack, nomem)),
                _ => unreachable!("tile register out of range"),
            }
        }
    }

    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize) {
        // SAFETY: tiles are configured; the caller guarantees 16 rows of 64 bytes.
        unsafe {
            macro_rules! ld {
                ($($n:literal),*) => {
                    match T {
                        $($n => std::arch::asm!(concat!("tileloadd tmm", $n, ", [{0} + {1}*1]"),
                            in(reg) p, in(reg) stride, options(nostack, readonly)),)*
                        _ => unreachable!("tile register out of range"),
                    }
                };
            }
            ld!(0, 1, 2, 3, 4, 5, 6, 7)
        }
    }

    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize) {
        // SAFETY: tiles are configured; the caller guarantees 16 writable rows of 64 bytes.
        unsafe {
            macro_rules! st {
                ($($n:literal),*) => {
                    match T {
                        $($n => std::arch::asm!(concat!("tilestored [{0} + {1}*1], tmm", $n),
                            in(reg) p, in(reg) stride, options(nostack)),)*
                        _ => unreachable!("tile register out of range"),
                    }
                };
            }
            st!(0, 1, 2, 3)
        }
    }

    unsafe fn dot<const C: u8, const A: u8, const B: u8>(&mut self, d: Dot) {
        // SAFETY: tiles are configured and loaded; the programs use only the
        // combinations below (C in 0..4, A in 4..6, B in 6..8).
        unsafe {
            macro_rules! dp {
                ($op:literal; $(($c:literal, $a:literal, $b:literal)),*) => {
                    match (C, A, B) {
                        $(($c, $a, $b) => std::arch::asm!(
                            concat!($op, " tmm", $c, ", tmm", $a, ", tmm", $b),
                            options(nostack, nomem)),)*
                        _ => unreachable!("tile combination not used by the program"),
                    }
                };
            }
            match d {
                Dot::Bf16 => dp!("tdpbf16ps"; (0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7)),
                Dot::U8S8 => dp!("tdpbusd"; (0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7)),
                Dot::S8U8 => dp!("tdpbsud"; (0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7)),
                Dot::S8S8 => dp!("tdpbssd"; (0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7)),
            }
        }
    }

    unsafe fn release(&mut self) {
        let held = HELD.with(|h| {
            let left = h.get().saturating_sub(1);
            h.set(left);
            left
        });
        if held == 0 {
            // SAFETY: releasing tile state is always valid once configured.
            unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) }
        }
    }

    unsafe fn write_block(
        &mut self,
        src: &[u32; AMX_ROWS * NR],
        into: Block,
        accumulate: bool,
        p: Precision,
    ) {
        // SAFETY: forwarded; every CPU with AMX has AVX2 and (so far) AVX-512 F.
        unsafe {
            if std::arch::is_x86_feature_detected!("avx512f") {
                super::amx_write::write_block_avx512(src, into, accumulate, p)
            } else {
                super::amx_write::write_block_avx2(src, into, accumulate, p)
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn held() -> u32 {
        HELD.with(|h| h.get())
    }

    /// Held configurations nest: programs run inside one configure and
    /// release nothing of their own, and only the outermost release ends it;
    /// afterwards a program configures the tiles again itself (a tile
    /// instruction without a configuration would fault). On CPUs whose
    /// tiles this process may use.
    #[test]
    fn held_configurations_nest_and_end_with_the_outermost() {
        if !super::super::Engine::Amx.runs_here(Precision::Bf16) {
            return;
        }
        assert_eq!(held(), 0);
        {
            // SAFETY: the tiles are permitted (checked above).
            let _outer = unsafe { HeldTiles::hold() };
            assert_eq!(held(), 1);
            // SAFETY: as above.
            unsafe { spin(&mut Hardware, Precision::Bf16, 4) };
            assert_eq!(held(), 1);
            {
                // SAFETY: as above.
                let _inner = unsafe { HeldTiles::hold() };
                assert_eq!(held(), 2);
            }
            assert_eq!(held(), 1);
            // SAFETY: as above; still configured by the outer hold.
            unsafe { spin(&mut Hardware, Precision::Int8, 4) };
        }
        assert_eq!(held(), 0);
        // SAFETY: as above; configures and releases on its own.
        unsafe { spin(&mut Hardware, Precision::Bf16, 4) };
        assert_eq!(held(), 0);
    }
}
