//! Layout and indexing ops, checked element by element.

mod common;
use common::*;
use emily::{DType, Tensor};

#[test]
fn permute_slice_concat_pad() {
    let shape = [3, 4, 5];
    let (x, xv) = randn(&shape, 1);
    let p = x.permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.shape(), &[5, 3, 4]);
    let pv = p.to_f64_vec().unwrap();
    for i in indices(&[5, 3, 4]) {
        assert_eq!(
            pv[flat(&i, &[5, 3, 4])],
            xv[flat(&[i[1], i[2], i[0]], &shape)]
        );
    }
    let s = x.slice(&[1, 0, 1], &[3, 4, 5], &[1, 2, 3]).unwrap();
    assert_eq!(s.shape(), &[2, 2, 2]);
    let sv = s.to_f64_vec().unwrap();
    for i in indices(&[2, 2, 2]) {
        assert_eq!(
            sv[flat(&i, &[2, 2, 2])],
            xv[flat(&[1 + i[0], 2 * i[1], 1 + 3 * i[2]], &shape)]
        );
    }
    let c = Tensor::concat(&[&x, &x.mul_scalar(2.0).unwrap()], 1).unwrap();
    assert_eq!(c.shape(), &[3, 8, 5]);
    let cv = c.to_f64_vec().unwrap();
    for i in indices(&[3, 8, 5]) {
        let want = if i[1] < 4 {
            xv[flat(&i, &shape)]
        } else {
            2.0 * xv[flat(&[i[0], i[1] - 4, i[2]], &shape)]
        };
        assert_eq!(cv[flat(&i, &[3, 8, 5])], want);
    }
    let pd = x.pad(&[(0, 0), (1, 2), (0, 1)], -3.0).unwrap();
    assert_eq!(pd.shape(), &[3, 7, 6]);
    let pdv = pd.to_f64_vec().unwrap();
    for i in indices(&[3, 7, 6]) {
        let inside = (1..5).contains(&i[1]) && i[2] < 5;
        let want = if inside {
            xv[flat(&[i[0], i[1] - 1, i[2]], &shape)]
        } else {
            -3.0
        };
        assert_eq!(pdv[flat(&i, &[3, 7, 6])], want);
    }
    let st = Tensor::stack(&[&x, &x], 0).unwrap();
    assert_eq!(st.shape(), &[2, 3, 4, 5]);
    let b = Tensor::from_slice(&[1.0f32, 2.0], &[2, 1])
        .unwrap()
        .broadcast_to(&[2, 3])
        .unwrap();
    assert_eq!(
        b.to_vec::<f32>().unwrap(),
        vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    );
    assert!(x.reshape(&[7, -1]).is_err());
    assert_eq!(x.reshape(&[-1, 5]).unwrap().shape(), &[12, 5]);
}

#[test]
fn gather_and_slice_update() {
    let (table, tv) = randn(&[10, 4], 3);
    let ids = Tensor::from_slice(&[3i64, 0, 9, 3], &[2, 2]).unwrap();
    let g = table.gather(&ids, 0).unwrap();
    assert_eq!(g.shape(), &[2, 2, 4]);
    let gv = g.to_f64_vec().unwrap();
    for (k, &r) in [3usize, 0, 9, 3].iter().enumerate() {
        assert_eq!(&gv[k * 4..k * 4 + 4], &tv[r * 4..r * 4 + 4]);
    }
    let bad = Tensor::from_slice(&[10i64], &[1]).unwrap();
    let e = table
        .gather(&bad, 0)
        .unwrap()
        .eval()
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");

    let cache = Tensor::zeros(&[1, 6, 2], DType::F32).unwrap();
    let upd = Tensor::ones(&[1, 2, 2], DType::F32).unwrap();
    let off = Tensor::from_slice(&[3i32], &[]).unwrap();
    let c = cache
        .slice_update(&upd, &off, 1)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(c, vec![0., 0., 0., 0., 0., 0., 1., 1., 1., 1., 0., 0.]);
    let off = Tensor::from_slice(&[5i32], &[]).unwrap();
    assert!(
        cache.slice_update(&upd, &off, 1).unwrap().eval().is_err(),
        "out of range offset"
    );
}

#[test]
fn empty_tensors_flow_through_every_op_family() {
    let e = Tensor::zeros(&[0, 3], DType::F32).unwrap();
    assert_eq!(
        e.add_scalar(1.0)
            .unwrap()
            .exp()
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        Vec::<f32>::new()
    );
    assert_eq!(
        e.sum(&[0], false).unwrap().to_vec::<f32>().unwrap(),
        vec![0.0; 3]
    );
    assert_eq!(e.softmax(-1).unwrap().shape(), &[0, 3]);
    let m = e
        .matmul(&Tensor::ones(&[3, 2], DType::F32).unwrap())
        .unwrap();
    assert_eq!(m.to_vec::<f32>().unwrap(), Vec::<f32>::new());
    let k0 = Tensor::ones(&[2, 0], DType::F32)
        .unwrap()
        .matmul(&Tensor::ones(&[0, 2], DType::F32).unwrap())
        .unwrap();
    assert_eq!(
        k0.to_vec::<f32>().unwrap(),
        vec![0.0; 4],
        "an empty inner dimension sums to zero"
    );
    let c = Tensor::concat(&[&e, &Tensor::ones(&[2, 3], DType::F32).unwrap()], 0).unwrap();
    assert_eq!(c.to_vec::<f32>().unwrap(), vec![1.0; 6]);
    assert!(Tensor::zeros(&[0], DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .is_err());
}

#[test]
fn permutes_moving_only_unit_axes_keep_values_and_leave_the_input_alone() {
    // Each permutation either only moves axes of size 1 (a view of the same
    // bytes) or also reorders long axes (a copy); both must give the values.
    let shape = [1, 5, 1, 3];
    for perm in [
        [2, 1, 0, 3],
        [1, 0, 3, 2],
        [0, 1, 3, 2],
        [1, 3, 0, 2],
        [3, 1, 2, 0],
    ] {
        let (x, xv) = randn(&shape, 7);
        let p = x.permute(&perm).unwrap();
        let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        assert_eq!(p.shape(), &out_shape[..]);
        let pv = p.to_f64_vec().unwrap();
        for i in indices(&out_shape) {
            let mut src = [0; 4];
            for (k, &a) in perm.iter().enumerate() {
                src[a] = i[k];
            }
            assert_eq!(pv[flat(&i, &out_shape)], xv[flat(&src, &shape)], "{perm:?}");
        }
        // An op after the permute must not write into the input's buffer.
        let q = p.add_scalar(1.0).unwrap().to_f64_vec().unwrap();
        assert_eq!(x.to_f64_vec().unwrap(), xv, "{perm:?}");
        let plus_one = |b: &f64| (*b as f32 + 1.0) as f64;
        assert!(
            q.iter().zip(&pv).all(|(a, b)| *a == plus_one(b)),
            "{perm:?}"
        );
    }
}

#[test]
fn head_permutes_and_slices_at_every_row_length_class() {
    // Contiguous rows of 1, 7, 8, 16, 77 and 1000 elements (single moves,
    // 8-element moves with and without a tail, the library copy), enough
    // rows that the copy is split across the pool's ranges mid-index.
    for d in [1usize, 7, 8, 16, 77, 1000] {
        let shape = [3, 64 * 64 / d.min(64) + 1, 5, d];
        let (x, xv) = randn(&shape, d as u64);
        // The head permute, then every axis reversed (the rows are read in
        // another order than they are written, and the innermost one is
        // strided).
        for perm in [[0usize, 2, 1, 3], [3, 2, 1, 0]] {
            let p = x.permute(&perm).unwrap();
            let ps = perm.map(|a| shape[a]);
            assert_eq!(p.shape(), &ps);
            let pv = p.to_f64_vec().unwrap();
            for i in indices(&ps) {
                let mut src = [0; 4];
                for (j, &a) in perm.iter().enumerate() {
                    src[a] = i[j];
                }
                assert_eq!(
                    pv[flat(&i, &ps)],
                    xv[flat(&src, &shape)],
                    "d {d} perm {perm:?} at {i:?}"
                );
            }
        }
        let s = x
            .slice(&[1, 1, 0, 0], &[3, shape[1], 5, d], &[1, 2, 2, 1])
            .unwrap();
        let ss = [2, (shape[1] - 1).div_ceil(2), 3, d];
        assert_eq!(s.shape(), &ss);
        let sv = s.to_f64_vec().unwrap();
        for i in indices(&ss) {
            assert_eq!(
                sv[flat(&i, &ss)],
                xv[flat(&[1 + i[0], 1 + 2 * i[1], 2 * i[2], i[3]], &shape)],
                "slice d {d} at {i:?}"
            );
        }
    }
}

#[test]
fn transposes_at_odd_sizes_and_every_element_width() {
    // 2-D transposes (a unit batch axis that collapses) at odd sides, in
    // 1-, 2-, 4- and 8-byte elements: the destination rows gathered from
    // strided source columns.
    for &(r, c) in &[
        (1usize, 40usize),
        (7, 33),
        (31, 32),
        (32, 77),
        (33, 100),
        (80, 300),
    ] {
        for dtype in [DType::U8, DType::BF16, DType::F32, DType::F64] {
            let (x, _) = randn(&[1, r, c], (r * 1000 + c) as u64);
            let x = x
                .mul_scalar(20.0)
                .unwrap()
                .cast(dtype)
                .unwrap()
                .eval()
                .unwrap();
            let xv = x.to_f64_vec().unwrap();
            let p = x.permute(&[0, 2, 1]).unwrap();
            assert_eq!(p.shape(), &[1, c, r]);
            let pv = p.to_f64_vec().unwrap();
            for i in 0..c {
                for j in 0..r {
                    assert_eq!(
                        pv[i * r + j],
                        xv[j * c + i],
                        "{dtype} {r}x{c} at ({i}, {j})"
                    );
                }
            }
        }
    }
}
