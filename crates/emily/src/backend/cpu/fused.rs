//! The elementwise engine: runs a [`FusedProgram`] in one pass over memory.
//!
//! The output is walked in chunks of [`CHUNK`] elements along its innermost
//! (collapsed) axis. For each chunk every input is either used in place (same
//! dtype as the compute type, not broadcast), filled from one broadcast element,
//! or widened into a scratch register; instructions run over L1-resident
//! registers through the SIMD kernels; the result is narrowed into the output.
//! Every eager elementwise op is a one-instruction program run by this same
//! engine, so fused and op-by-op results agree bit for bit. A few programs
//! of a known shape run as one dedicated loop instead, with the same
//! operations and the same bits (`fused_special.rs`). Chunks are split
//! across the thread pool above a size threshold. An input buffer that nobody
//! else holds and has the output's size is reused as the output (each chunk is
//! read completely before it is written).

use emily_kernels::parallel;

use super::compute::{f32_exact, Compute};
use crate::error::Result;
use crate::ops::{FusedInstr, FusedProgram, Operand};
use crate::shape::{broadcast_strides, collapse_dims, contiguous_strides, numel};
use crate::{Array, DType};

/// Elements per chunk: a register is 2 KiB of f32, so many live registers stay
/// in L1, and chunks are short enough that the loads of the next one overlap
/// the compute of this one (measured: 512 beat 256, 1024 and 2048 on a
/// memory + GELU chain).
pub(crate) const CHUNK: usize = 512;

/// Runs `prog` (one output) over `inputs`, producing an array of
/// `shape`/`dtype`.
pub(crate) fn run(
    prog: &FusedProgram,
    inputs: Vec<Array>,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    prog.check_one_output()?;
    let mut outs = run_outputs(prog, inputs, shape, dtype)?;
    Ok(outs.swap_remove(0))
}

/// Runs `prog` over `inputs`: its main output (`shape`/`dtype`), then each
/// of its extra outputs (same shape, their own dtypes), all in one pass.
pub(crate) fn run_outputs(
    prog: &FusedProgram,
    inputs: Vec<Array>,
    shape: &[usize],
    dtype: DType,
) -> Result<Vec<Array>> {
    let wide = !f32_exact(dtype)
        || inputs.iter().any(|a| !f32_exact(a.dtype()))
        || prog_needs_f64(prog)
        || prog.extra_outputs.iter().any(|e| !f32_exact(e.dtype));
    if wide {
        run_typed::<f64>(prog, inputs, shape, dtype)
    } else {
        run_typed::<f32>(prog, inputs, shape, dtype)
    }
}

fn prog_needs_f64(prog: &FusedProgram) -> bool {
    prog.instrs.iter().any(|i| !f32_exact(i.dtype()))
}

struct Raw {
    ptr: *const u8,
    elem: usize,
    dtype: DType,
}

struct OutPtr(*mut u8);
// SAFETY: chunks write disjoint ranges of the output.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}
impl OutPtr {
    fn get(&self) -> *mut u8 {
        self.0
    }
}

/// Where an extra output goes: its buffer, element size, dtype, whether it
/// is written with streaming stores, and its register.
struct ExtraPtr {
    out: OutPtr,
    elem: usize,
    dtype: DType,
    stream: bool,
    reg: usize,
}
struct InPtrs(Vec<Raw>);
impl InPtrs {
    fn all(&self) -> &[Raw] {
        &self.0
    }
}
// SAFETY: inputs are only read (the donated one is read before each chunk's write).
unsafe impl Send for InPtrs {}
unsafe impl Sync for InPtrs {}

fn run_typed<C: Compute>(
    prog: &FusedProgram,
    inputs: Vec<Array>,
    shape: &[usize],
    dtype: DType,
) -> Result<Vec<Array>> {
    let mut strides = vec![contiguous_strides(shape)];
    strides.extend(inputs.iter().map(|a| broadcast_strides(a.shape(), shape)));
    let (cshape, cstrides) = collapse_dims(shape, &strides);
    let inner = *cshape.last().unwrap();
    let outer_shape = &cshape[..cshape.len() - 1];

    // Donate the first unique, unbroadcast input of the output's byte size.
    let out_bytes = dtype.storage_bytes(shape)?;
    let donor = inputs
        .iter()
        .position(|a| a.shape() == shape && a.len_bytes() == out_bytes);
    let donor = donor.filter(|_| matches!(prog.output, Operand::Reg(_)));
    let raws = InPtrs(
        inputs
            .iter()
            .map(|a| Raw {
                ptr: a.bytes().as_ptr(),
                elem: a.dtype().size_in_bytes(),
                dtype: a.dtype(),
            })
            .collect(),
    );
    let mut out = None;
    let mut donated = None;
    let mut kept = Vec::with_capacity(inputs.len());
    for (i, a) in inputs.into_iter().enumerate() {
        if Some(i) == donor {
            match a.donate(shape, dtype) {
                Ok(d) => {
                    out = Some(d);
                    donated = Some(i);
                }
                Err(a) => kept.push(a),
            }
        } else {
            kept.push(a);
        }
    }
    let mut out = match out {
        Some(out) => out,
        None => Array::uninit(shape, dtype)?,
    };
    let out_ptr = OutPtr(out.bytes_mut().expect("output is unique").as_mut_ptr());
    let out_elem = dtype.size_in_bytes();

    // Outputs much larger than the caches bypass them (no read-for-ownership).
    let stream = out_bytes >= STREAM_BYTES;
    let mut extra_arrays = prog
        .extra_outputs
        .iter()
        .map(|e| Array::uninit(shape, e.dtype))
        .collect::<Result<Vec<_>>>()?;
    // For each instruction, the extra outputs written right after it.
    let mut extras_after: Vec<Vec<ExtraPtr>> = (0..prog.instrs.len()).map(|_| Vec::new()).collect();
    for (e, a) in prog.extra_outputs.iter().zip(extra_arrays.iter_mut()) {
        let bytes = a.len_bytes();
        let slot = extras_after.get_mut(e.after).ok_or_else(|| {
            crate::error::invalid("fused", "an extra output after a missing instruction")
        })?;
        slot.push(ExtraPtr {
            out: OutPtr(a.bytes_mut().expect("output is unique").as_mut_ptr()),
            elem: e.dtype.size_in_bytes(),
            dtype: e.dtype,
            stream: bytes >= STREAM_BYTES,
            reg: e.reg,
        });
    }
    let rows = numel(outer_shape).max(1);
    // Short rows (a last axis under half a chunk, e.g. 64-wide heads with a
    // per-row broadcast operand) are batched several to a unit, so the
    // per-unit work (resolving inputs, one SIMD call per instruction) is
    // paid per chunk of elements, not per row.
    let rows_per = CHUNK.checked_div(inner).unwrap_or(1).max(1);
    let (units, per_row) = if rows_per > 1 {
        (rows.div_ceil(rows_per), 1)
    } else {
        let per_row = inner.div_ceil(CHUNK);
        (rows * per_row, per_row)
    };
    let width = if rows_per > 1 {
        rows_per * inner
    } else {
        CHUNK.min(inner)
    };
    let access: Vec<Access> = (1..cstrides.len())
        .map(|k| Access::of(&cstrides[k], &cstrides[0], rows_per > 1, numel(shape)))
        .collect();
    // The last instruction writes the output chunk itself (no register and
    // no copy) when it produces the output, the output holds the compute
    // type, and it does not read the donated input that chunk overwrites.
    let write_last = !stream
        && C::holds(dtype)
        && extras_after.last().is_some_and(|e| e.is_empty())
        && match (prog.output, prog.instrs.last()) {
            (Operand::Reg(r), Some(last)) => {
                last.dst() == r && donated.is_none_or(|j| !last.reads(Operand::Input(j)))
            }
            _ => false,
        };
    let (body, last) = prog
        .instrs
        .split_at(prog.instrs.len() - usize::from(write_last));
    // A recognised program runs as one loop into the output register (or
    // into the output itself, when the last instruction may write it).
    let special = super::fused_special::recognize(prog);
    let special_direct =
        !stream && C::holds(dtype) && special.is_some_and(|s| donated.is_none_or(|j| !s.reads(j)));
    let cost = width * (prog.instrs.len() + 1);
    parallel::for_each_range(units, cost, |start, end| {
        let mut regs: Vec<Vec<C>> = vec![vec![C::default(); width]; prog.num_regs];
        let consts: Vec<Vec<C>> = prog
            .constants
            .iter()
            .map(|&b| vec![C::from_f64(f64::from_bits(b)); width])
            .collect();
        let mut loads: Vec<Vec<C>> = vec![Vec::new(); raws.all().len()];
        for (j, raw) in raws.all().iter().enumerate() {
            match access[j] {
                Access::Scalar => {
                    // SAFETY: a broadcast input holds at least its one element.
                    let bytes = unsafe { std::slice::from_raw_parts(raw.ptr, raw.elem) };
                    loads[j].resize(width, C::default());
                    C::load(bytes, raw.dtype, &mut loads[j]);
                }
                Access::Tile => {
                    // SAFETY: the input holds one row of `inner` elements at
                    // offset 0 (every outer stride is 0).
                    let bytes = unsafe { std::slice::from_raw_parts(raw.ptr, inner * raw.elem) };
                    loads[j].resize(width, C::default());
                    C::load(bytes, raw.dtype, &mut loads[j][..inner]);
                    for r in 1..rows_per {
                        loads[j].copy_within(..inner, r * inner);
                    }
                }
                _ => {}
            }
        }
        let mut views: Vec<(usize, bool)> = Vec::with_capacity(raws.all().len());
        let mut idx = vec![0usize; outer_shape.len()];
        let mut ri = idx.clone();
        let mut row_vals: Vec<C> = vec![C::default(); rows_per];
        for u in start..end {
            // This unit: rows row..row + nrows, columns c0..c0 + w of each.
            let (row, c0, nrows, w) = if rows_per > 1 {
                let row = u * rows_per;
                (row, 0, rows_per.min(rows - row), inner)
            } else {
                let c0 = (u % per_row) * CHUNK;
                (u / per_row, c0, 1, CHUNK.min(inner - c0))
            };
            let len = nrows * w;
            unravel(row, outer_shape, &mut idx);
            let offset = |k: usize, idx: &[usize]| -> usize {
                let s = &cstrides[k];
                idx.iter().zip(s).map(|(i, st)| i * st).sum::<usize>() + c0 * s[s.len() - 1]
            };
            // Resolve inputs: (element offset, used in place).
            views.clear();
            for (j, raw) in raws.all().iter().enumerate() {
                match access[j] {
                    Access::Scalar | Access::Tile => views.push((0, false)),
                    Access::PerRow => {
                        // One value per row, spread over the row's columns.
                        ri.copy_from_slice(&idx);
                        for (r, v) in row_vals[..nrows].iter_mut().enumerate() {
                            if r > 0 {
                                step(&mut ri, outer_shape);
                            }
                            let o = offset(j + 1, &ri);
                            // SAFETY: o lies inside input j (strides come from its shape).
                            let bytes = unsafe {
                                std::slice::from_raw_parts(raw.ptr.add(o * raw.elem), raw.elem)
                            };
                            *v = match C::direct(bytes, raw.dtype) {
                                Some(x) => x[0],
                                None => {
                                    let mut one = [C::default()];
                                    C::load(bytes, raw.dtype, &mut one);
                                    one[0]
                                }
                            };
                        }
                        loads[j].resize(len, C::default());
                        C::spread_rows(&row_vals[..nrows], w, &mut loads[j][..len]);
                        views.push((0, false));
                    }
                    Access::Rows => {
                        // Row by row into the scratch register.
                        loads[j].resize(len, C::default());
                        ri.copy_from_slice(&idx);
                        for r in 0..nrows {
                            if r > 0 {
                                step(&mut ri, outer_shape);
                            }
                            let o = offset(j + 1, &ri);
                            // SAFETY: o/w lie inside input j (strides come from its shape).
                            let bytes = unsafe {
                                std::slice::from_raw_parts(raw.ptr.add(o * raw.elem), w * raw.elem)
                            };
                            C::load(bytes, raw.dtype, &mut loads[j][r * w..(r + 1) * w]);
                        }
                        views.push((0, false));
                    }
                    Access::Run { bcast } => {
                        let off = offset(j + 1, &idx);
                        let count = if bcast { 1 } else { len };
                        // SAFETY: offset/count lie inside input j (strides come
                        // from its shape; a like-output input spans the unit's rows).
                        let bytes = unsafe {
                            std::slice::from_raw_parts(
                                raw.ptr.add(off * raw.elem),
                                count * raw.elem,
                            )
                        };
                        let direct = !bcast && C::direct(bytes, raw.dtype).is_some();
                        if !direct {
                            loads[j].resize(len, C::default());
                            C::load(bytes, raw.dtype, &mut loads[j][..len]);
                        }
                        views.push((off, direct));
                    }
                }
            }
            let input = |j: usize| -> &[C] {
                let (off, direct) = views[j];
                if direct {
                    let raw = &raws.all()[j];
                    // SAFETY: as above; the slice is dropped before this chunk's store.
                    let bytes = unsafe {
                        std::slice::from_raw_parts(raw.ptr.add(off * raw.elem), len * raw.elem)
                    };
                    C::direct(bytes, raw.dtype).unwrap()
                } else {
                    &loads[j][..len]
                }
            };
            let operand = |o: Operand, regs: &'_ [Vec<C>]| -> *const C {
                match o {
                    Operand::Input(j) => input(j).as_ptr(),
                    Operand::Reg(r) => regs[r].as_ptr(),
                    Operand::Const(c) => consts[c].as_ptr(),
                }
            };
            let o = offset(0, &idx);
            if let (Some(s), Operand::Reg(r)) = (special, prog.output) {
                let get = |j: usize| input(j).as_ptr();
                // SAFETY: as for the main output below.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.get().add(o * out_elem), len * out_elem)
                };
                let direct = if special_direct {
                    C::direct_mut(&mut *dst, dtype)
                } else {
                    None
                };
                if let Some(out) = direct {
                    if C::special(s, &get, out) {
                        continue;
                    }
                }
                let mut reg = std::mem::take(&mut regs[r]);
                let done = C::special(s, &get, &mut reg[..len]);
                regs[r] = reg;
                if done {
                    if stream {
                        C::store_streaming(&regs[r][..len], dst, dtype);
                    } else {
                        C::store(&regs[r][..len], dst, dtype);
                    }
                    continue;
                }
            }
            for (ins, extras) in body.iter().zip(&extras_after) {
                execute(ins, &mut regs, &operand, len);
                for e in extras {
                    // SAFETY: as for the main output below (each extra output
                    // has the output's shape, in its own buffer).
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(e.out.get().add(o * e.elem), len * e.elem)
                    };
                    if e.stream {
                        C::store_streaming(&regs[e.reg][..len], dst, e.dtype);
                    } else {
                        C::store(&regs[e.reg][..len], dst, e.dtype);
                    }
                }
            }
            // SAFETY: each unit writes its own disjoint range of the output
            // (the donated input's chunk is no longer read: see `write_last`).
            let dst = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.get().add(o * out_elem), len * out_elem)
            };
            if let Some(ins) = last.first() {
                match C::direct_mut(&mut *dst, dtype) {
                    Some(out) => {
                        execute_into(ins, &regs, &operand, out);
                        continue;
                    }
                    // A misaligned output: through the register after all.
                    None => execute(ins, &mut regs, &operand, len),
                }
            }
            let result: &[C] = match prog.output {
                Operand::Reg(r) => &regs[r][..len],
                Operand::Input(j) => input(j),
                Operand::Const(c) => &consts[c][..len],
            };
            if stream {
                C::store_streaming(result, dst, dtype);
            } else {
                C::store(result, dst, dtype);
            }
        }
    });
    drop(kept);
    let mut outs = Vec::with_capacity(1 + extra_arrays.len());
    outs.push(out);
    outs.append(&mut extra_arrays);
    Ok(outs)
}

/// How a unit reads one input (decided once per run from its collapsed
/// strides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// One element broadcast everywhere (an optimizer's scalars): filled
    /// once per range of units.
    Scalar,
    /// Units of several rows, the same row for every row (a weight of the
    /// last axis): filled once per range with a unit's worth of copies.
    Tile,
    /// Units of several rows, one element per row (a per-row scale): the
    /// unit's values are read and spread over their rows.
    PerRow,
    /// Units of several rows laid out unlike the output: copied row by row.
    Rows,
    /// One contiguous run per unit (laid out like the output, or units within
    /// one row), used in place when the dtype allows; `bcast`: one element
    /// repeated along the run.
    Run {
        /// The run is one element broadcast.
        bcast: bool,
    },
}

impl Access {
    /// The access of an input with collapsed strides `s` to an output with
    /// strides `out` (`batched`: units hold several rows; `n`: the output's
    /// element count).
    fn of(s: &[usize], out: &[usize], batched: bool, n: usize) -> Access {
        let (outer, last) = s.split_at(s.len() - 1);
        let outer_zero = outer.iter().all(|&st| st == 0);
        if n > 0 && outer_zero && last[0] == 0 {
            Access::Scalar
        } else if !batched || s == out {
            Access::Run {
                bcast: last[0] == 0,
            }
        } else if outer_zero {
            Access::Tile
        } else if last[0] == 0 {
            Access::PerRow
        } else {
            Access::Rows
        }
    }
}

/// The multi-index of outer row `row` of `shape` (row-major), into `idx`.
fn unravel(row: usize, shape: &[usize], idx: &mut [usize]) {
    let mut r = row;
    for d in (0..shape.len()).rev() {
        idx[d] = r % shape[d];
        r /= shape[d];
    }
}

/// Advances the multi-index `idx` of `shape` to the next row (row-major).
fn step(idx: &mut [usize], shape: &[usize]) {
    for d in (0..shape.len()).rev() {
        idx[d] += 1;
        if idx[d] < shape[d] {
            return;
        }
        idx[d] = 0;
    }
}

/// Outputs of at least this many bytes are written with streaming stores.
const STREAM_BYTES: usize = 8 << 20;

pub(super) fn execute<C: Compute>(
    ins: &FusedInstr,
    regs: &mut [Vec<C>],
    operand: &dyn Fn(Operand, &[Vec<C>]) -> *const C,
    len: usize,
) {
    let dst_idx = ins.dst();
    let mut dst = std::mem::take(&mut regs[dst_idx]);
    execute_into(ins, regs, operand, &mut dst[..len]);
    regs[dst_idx] = dst;
}

/// Runs `ins` over `out.len()` elements into `out` (a register taken out of
/// `regs`, or the output itself).
fn execute_into<C: Compute>(
    ins: &FusedInstr,
    regs: &[Vec<C>],
    operand: &dyn Fn(Operand, &[Vec<C>]) -> *const C,
    out: &mut [C],
) {
    let len = out.len();
    // SAFETY: every operand points at `len` valid elements (an input view,
    // a register other than the destination — the compiler never aliases
    // them — or a constant), alive for this call, none overlapping `out`.
    let get =
        |o: &Operand| -> &[C] { unsafe { std::slice::from_raw_parts(operand(*o, regs), len) } };
    match ins {
        FusedInstr::Unary { op, src, dtype, .. } => {
            C::unary(*op, get(src), out);
            C::round_to(*dtype, out);
        }
        FusedInstr::Binary {
            op, a, b, dtype, ..
        } => {
            C::binary(*op, get(a), get(b), out);
            C::round_to(*dtype, out);
        }
        FusedInstr::Where {
            cond, a, b, dtype, ..
        } => {
            C::select(get(cond), get(a), get(b), out);
            C::round_to(*dtype, out);
        }
        FusedInstr::Cast { src, dtype, .. } => {
            out.copy_from_slice(get(src));
            C::round_to(*dtype, out);
        }
    }
}
