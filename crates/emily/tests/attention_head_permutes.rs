//! The compiler folds the `(0, 2, 1, 3)` head permutes around a fused
//! attention into the kernel's strides: projections laid out `(B, T, H, D)`
//! are read in place and the output is written `(B, T, H, D)`. The folded
//! plan runs no permute and gives exactly the bits the eager graph (which
//! copies each permute) gives — for f32 and bf16, the int8 products, every
//! mask kind, grouped heads and odd lengths (causal f32 attention stays
//! head-major where the CPU's causal kernel reads only that layout); a
//! permute with another reader stays for it, and an attention that is an
//! output keeps its layout.

use emily::fast::{
    scaled_dot_product_attention, scaled_dot_product_attention_int8, SdpaMask, SdpaOptions,
};
use emily::{compile, DType, Result, Tensor};

mod common;
mod grad_common;

use common::f32_bits;
use grad_common::{count, randn};

const SWAP: [usize; 4] = [0, 2, 1, 3];

/// Which mask the attention under test applies.
#[derive(Clone, Copy, Debug)]
enum MaskCase {
    None,
    Causal,
    Additive,
}

/// `(B, T, H, D)` projections `[q, k, v]` (and an additive mask) of `dtype`.
fn operands(
    b: usize,
    tq: usize,
    tk: usize,
    (hq, hk): (usize, usize),
    d: usize,
    dtype: DType,
    seed: u64,
) -> Vec<Tensor> {
    let r = |shape: &[usize], s: u64| {
        randn(shape, seed * 10 + s)
            .cast(dtype)
            .unwrap()
            .eval()
            .unwrap()
    };
    let mask = r(&[1, 1, tq, tk], 9);
    vec![
        r(&[b, tq, hq, d], 1),
        r(&[b, tk, hk, d], 2),
        r(&[b, tk, hk, d], 3),
        mask,
    ]
}

/// `permute(attend(permute(q), permute(k), permute(v)))`, as attention
/// layers compute it, plus `extra` (the permuted queries again, doubled:
/// a second reader of that permute) when asked.
fn layer(
    mask: MaskCase,
    int8: bool,
    extra: bool,
) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Clone {
    move |a: &[Tensor]| {
        let (q, k, v) = (
            a[0].permute(&SWAP)?,
            a[1].permute(&SWAP)?,
            a[2].permute(&SWAP)?,
        );
        let opts = SdpaOptions {
            mask: match mask {
                MaskCase::None => SdpaMask::None,
                MaskCase::Causal => SdpaMask::Causal,
                MaskCase::Additive => SdpaMask::Additive(a[3].clone()),
            },
            ..Default::default()
        };
        let o = if int8 {
            scaled_dot_product_attention_int8(&q, &k, &v, opts)?
        } else {
            scaled_dot_product_attention(&q, &k, &v, opts)?
        };
        let mut out = vec![o.permute(&SWAP)?];
        if extra {
            out.push(q.add(&q)?);
        }
        Ok(out)
    }
}

#[test]
fn permutes_fold_into_the_attention_with_the_eager_bits() {
    let mut seed = 0;
    for (dtype, int8) in [
        (DType::F32, false),
        (DType::BF16, false),
        (DType::BF16, true),
    ] {
        for mask in [MaskCase::None, MaskCase::Causal, MaskCase::Additive] {
            for &(tq, tk) in &[(1usize, 7usize), (7, 7), (77, 77), (33, 600)] {
                for &(heads, d) in &[((3usize, 3usize), 64usize), ((4, 2), 16)] {
                    seed += 1;
                    let a = operands(2, tq, tk, heads, d, dtype, seed);
                    let f = layer(mask, int8, false);
                    let compiled = compile(f.clone());
                    let plan = compiled.plan(&a).unwrap();
                    let case = format!(
                        "{dtype} int8 {int8} {mask:?} tq {tq} tk {tk} heads {heads:?} d {d}"
                    );
                    // Causal f32 attention keeps its permutes where the
                    // head-major causal kernel serves it (CPUs without
                    // AVX-512); everything else folds.
                    if count(&plan, "scaled_dot_product_attention_seq_major") == 1 {
                        assert_eq!(
                            count(&plan, "permute"),
                            0,
                            "{case}: {:?}",
                            plan.op_frequencies()
                        );
                    } else {
                        let head_major_kernel =
                            dtype == DType::F32 && matches!(mask, MaskCase::Causal);
                        assert!(
                            head_major_kernel,
                            "{case} did not fold: {:?}",
                            plan.op_frequencies()
                        );
                    }
                    let folded = compiled.call(&a).unwrap();
                    let eager = f(&a).unwrap();
                    assert_eq!(folded[0].shape(), &[2, tq, heads.0, d][..], "{case}");
                    assert_eq!(f32_bits(&folded[0]), f32_bits(&eager[0]), "{case}");
                }
            }
        }
    }
}

#[test]
fn a_shared_permute_stays_for_its_other_reader() {
    let a = operands(1, 9, 9, (2, 2), 8, DType::F32, 99);
    let f = layer(MaskCase::Causal, false, true);
    let compiled = compile(f.clone());
    let plan = compiled.plan(&a).unwrap();
    // The queries' permute feeds the doubling too; the others fold.
    assert_eq!(count(&plan, "permute"), 1, "{:?}", plan.op_frequencies());
    assert_eq!(count(&plan, "scaled_dot_product_attention_seq_major"), 1);
    let (folded, eager) = (compiled.call(&a).unwrap(), f(&a).unwrap());
    for (x, y) in folded.iter().zip(&eager) {
        assert_eq!(f32_bits(x), f32_bits(y));
    }
}

#[test]
fn an_attention_that_is_an_output_keeps_its_layout() {
    let a = operands(1, 5, 6, (2, 1), 8, DType::F32, 7);
    let f = |a: &[Tensor]| -> Result<Vec<Tensor>> {
        let (q, k, v) = (
            a[0].permute(&SWAP)?,
            a[1].permute(&SWAP)?,
            a[2].permute(&SWAP)?,
        );
        let o = scaled_dot_product_attention(&q, &k, &v, SdpaOptions::default())?;
        Ok(vec![o.permute(&SWAP)?, o])
    };
    let compiled = compile(f);
    let plan = compiled.plan(&a).unwrap();
    // The inputs fold; the output permute stays (the head-major output is
    // returned too).
    assert_eq!(count(&plan, "permute"), 1, "{:?}", plan.op_frequencies());
    let (folded, eager) = (compiled.call(&a).unwrap(), f(&a).unwrap());
    assert_eq!(folded[1].shape(), &[1, 2, 5, 8][..]);
    for (x, y) in folded.iter().zip(&eager) {
        assert_eq!(f32_bits(x), f32_bits(y));
    }
}

#[test]
fn a_widened_bf16_output_is_written_widened() {
    // bf16 attention, heads merged and widened to f32 (as the Whisper
    // encoder's layers do): the plan has no cast, and the same bits.
    for int8 in [false, true] {
        for (tq, merge) in [(77usize, true), (7, false)] {
            let a = operands(2, tq, tq, (3, 3), 64, DType::BF16, 40 + tq as u64);
            let f = move |a: &[Tensor]| -> Result<Vec<Tensor>> {
                let o = layer(MaskCase::None, int8, false)(a)?.remove(0);
                let o = if merge {
                    o.reshape_to(&[2, tq, 192])?
                } else {
                    o
                };
                Ok(vec![o.cast(DType::F32)?])
            };
            let compiled = compile(f);
            let plan = compiled.plan(&a).unwrap();
            let case = format!("int8 {int8} tq {tq} merge {merge}");
            assert_eq!(
                count(&plan, "cast"),
                0,
                "{case}: {:?}",
                plan.op_frequencies()
            );
            let (folded, eager) = (compiled.call(&a).unwrap(), f(&a).unwrap());
            assert_eq!(folded[0].dtype(), DType::F32, "{case}");
            assert_eq!(folded[0].shape(), eager[0].shape(), "{case}");
            assert_eq!(f32_bits(&folded[0]), f32_bits(&eager[0]), "{case}");
        }
    }
}
