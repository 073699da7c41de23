//! Portable micro-kernels (plain loops over `NV` groups of 4 lanes; the
//! baseline ISA and non-x86 targets). Same contracts as the
//! [`super::MicroKernels`] methods.

pub(super) use super::transpose_scalar as transpose;
use crate::fast::lanes::fmadd;

const L: usize = 4;
/// aarch64 always has FMA; x86-64's baseline (SSE2) does not.
const FMA: bool = cfg!(target_arch = "aarch64");

#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores<const NV: usize, const MR: usize, const MAX: bool>(
    qt: *const f32,
    ldq: usize,
    k: *const f32,
    ldk: usize,
    nk: usize,
    depth: usize,
    st: *mut f32,
    ldst: usize,
    tmax: *mut f32,
) {
    for x in 0..NV {
        let mut acc = [[0.0f32; L]; MR];
        for d in 0..depth {
            let q = &*(qt.add(d * ldq + x * L) as *const [f32; L]);
            for (m, a) in acc.iter_mut().enumerate() {
                let kb = *k.add(m.min(nk - 1) * ldk + d);
                for n in 0..L {
                    a[n] = fmadd::<FMA>(kb, q[n], a[n]);
                }
            }
        }
        for (m, a) in acc.iter().enumerate().take(nk) {
            *(st.add(m * ldst + x * L) as *mut [f32; L]) = *a;
        }
        if MAX {
            let mx = &mut *(tmax.add(x * L) as *mut [f32; L]);
            for a in acc.iter().take(nk) {
                for n in 0..L {
                    mx[n] = if a[n] > mx[n] { a[n] } else { mx[n] };
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn values<const NV: usize, const MR: usize>(
    pt: *const f32,
    ldp: usize,
    nkeys: usize,
    v: *const f32,
    ldv: usize,
    nv: usize,
    alpha: *const f32,
    ot: *mut f32,
    ldo: usize,
) {
    for x in 0..NV {
        let al = &*(alpha.add(x * L) as *const [f32; L]);
        for m in 0..nv {
            let o = &mut *(ot.add(m * ldo + x * L) as *mut [f32; L]);
            let mut acc = [0.0f32; L];
            for n in 0..L {
                acc[n] = o[n] * al[n];
            }
            for j in 0..nkeys {
                let p = &*(pt.add(j * ldp + x * L) as *const [f32; L]);
                let vb = *v.add(j * ldv + m);
                for n in 0..L {
                    acc[n] = fmadd::<FMA>(vb, p[n], acc[n]);
                }
            }
            *o = acc;
        }
    }
}

pub(super) unsafe fn softmax<const NV: usize>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    softmax_max::<NV, false>(st, ldst, keys, std::ptr::null(), m, l, alpha)
}

/// `MicroKernels::softmax_max`: the portable step finds its own maximum
/// (the same value: a maximum is exact), `tmax` is not read (may be null);
/// `SHORT` selects the exponential as on the vector ISAs
/// ([`crate::fast::attention::softmax::online_update`]).
pub(super) unsafe fn softmax_max<const NV: usize, const SHORT: bool>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    _tmax: *const f32,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let lanes = NV * L;
    let rows = if keys == 0 {
        0
    } else {
        (keys - 1) * ldst + lanes
    };
    crate::fast::attention::softmax::online_update::<SHORT>(
        std::slice::from_raw_parts_mut(st, rows),
        ldst,
        keys,
        std::slice::from_raw_parts_mut(m, lanes),
        std::slice::from_raw_parts_mut(l, lanes),
        std::slice::from_raw_parts_mut(alpha, lanes),
    )
}
