//! The device seam itself: the reference backend against hand-computed
//! values, device moves, mixed-device errors, mapped storage, checked sizes,
//! and the compiler asking the backend what it fuses.

use std::sync::Arc;

use emily::backend::{self, reference::ReferenceBuffer};
use emily::fast::{self, RopeOptions, SdpaOptions};
use emily::ops::{BinaryOp, Op, UnaryOp};
use emily::{compile, Array, DType, Device, Error, Tensor};

const REF: Device = Device::Reference;

fn on_ref(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice_on(v, shape, REF).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_device(Device::Cpu).unwrap().to_f64_vec().unwrap()
}

#[test]
fn reference_matches_hand_computed_values() {
    let a = on_ref(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = on_ref(&[5.0, 6.0, 7.0, 8.0], &[2, 2]);
    assert_eq!(values(&a.matmul(&b).unwrap()), [19.0, 22.0, 43.0, 50.0]);
    assert_eq!(
        values(&a.t().unwrap().matmul(&b).unwrap()),
        [26.0, 30.0, 38.0, 44.0]
    );

    // [1 2 3 4] * [1 0 -1], padding 1: [0-2, 1-3, 2-4, 3-0].
    let x = on_ref(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 4]);
    let w = on_ref(&[1.0, 0.0, -1.0], &[1, 1, 3]);
    assert_eq!(
        values(&x.conv1d(&w, 1, 1, 1, 1).unwrap()),
        [-2.0, -2.0, -2.0, 3.0]
    );

    let s = values(
        &on_ref(&[0.0, 2f32.ln(), f32::NEG_INFINITY], &[3])
            .softmax(-1)
            .unwrap(),
    );
    assert!((s[0] - 1.0 / 3.0).abs() < 1e-7 && (s[1] - 2.0 / 3.0).abs() < 1e-7 && s[2] == 0.0);
    let masked = on_ref(&[f32::NEG_INFINITY; 2], &[2]).softmax(0).unwrap();
    assert_eq!(values(&masked), [0.0, 0.0]);

    let n = fast::layer_norm(&on_ref(&[1.0, 3.0], &[1, 2]), None, None, 0.0).unwrap();
    assert_eq!(values(&n), [-1.0, 1.0]);
    let n = fast::rms_norm(&on_ref(&[3.0, 4.0], &[1, 2]), None, 0.0).unwrap();
    let r = (12.5f64).sqrt();
    assert!(values(&n)
        .iter()
        .zip([3.0 / r, 4.0 / r])
        .all(|(g, w)| (g - w).abs() < 1e-6));

    // Position 1 with frequency 1, scale π/2: a quarter turn of (x0, x1).
    let x = on_ref(&[1.0, 0.0, 1.0, 0.0], &[2, 2]);
    let mut o = RopeOptions::new(2);
    o.scale = std::f32::consts::FRAC_PI_2;
    let y = values(&fast::rope(&x, o).unwrap());
    let want = [1.0, 0.0, 0.0, 1.0];
    assert!(
        y.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
        "{y:?}"
    );

    // One query against two keys with equal scores averages the values.
    let q = on_ref(&[1.0, 0.0], &[1, 1, 1, 2]);
    let k = on_ref(&[0.0, 1.0, 0.0, -1.0], &[1, 1, 2, 2]);
    let v = on_ref(&[2.0, 4.0], &[1, 1, 2, 1]);
    let y = fast::scaled_dot_product_attention(&q, &k, &v, SdpaOptions::default()).unwrap();
    assert_eq!(values(&y), [3.0]);

    let x = on_ref(&[3.0, -1.0, 3.0, 7.0, f32::NAN, 2.0], &[2, 3]);
    assert_eq!(values(&x.argmax(-1, false).unwrap()), [0.0, 1.0]);
    assert_eq!(
        values(&x.narrow(0, 0, 1).unwrap().sum(&[], false).unwrap()),
        [5.0]
    );
}

#[test]
fn tensors_move_between_devices_bit_exactly() {
    for dtype in super::harness::ALL {
        let x = super::harness::input(&[7, 3], dtype, 1, super::harness::Values::Normal);
        let r = x.to_device(REF).unwrap();
        assert_eq!((r.device(), r.dtype(), r.shape()), (REF, dtype, x.shape()));
        let a = r.array().unwrap();
        assert_eq!(a.device(), REF);
        assert!(
            a.host_bytes().is_none(),
            "a reference array is a backend buffer"
        );
        assert!(a.buffer::<ReferenceBuffer>().is_some());
        let back = r.to_device(Device::Cpu).unwrap();
        let (xa, ba) = (x.array().unwrap(), back.array().unwrap());
        assert_eq!(xa.to_host_bytes().unwrap(), ba.to_host_bytes().unwrap());
        assert_eq!(x.to_f64_vec().unwrap(), r.to_f64_vec().unwrap());
    }
}

#[test]
fn mixed_devices_are_errors_naming_the_op() {
    let c = Tensor::ones(&[2, 2], DType::F32).unwrap();
    let r = Tensor::ones_on(&[2, 2], DType::F32, REF).unwrap();
    let e = c.add(&r).unwrap_err().to_string();
    assert!(
        e.contains("binary") && e.contains("cpu") && e.contains("reference"),
        "{e}"
    );
    let e = c.matmul(&r).unwrap_err().to_string();
    assert!(e.contains("matmul"), "{e}");
    let e = fast::rms_norm(
        &c,
        Some(&Tensor::ones_on(&[2], DType::F32, REF).unwrap()),
        1e-5,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("rms_norm") && e.contains("different devices"),
        "{e}"
    );

    // A backend handed an array of another device refuses it.
    let ra = r.array().unwrap();
    let ca = c.array().unwrap();
    let op = Op::Binary(BinaryOp::Add);
    let e = backend::get(Device::Cpu)
        .execute(&op, vec![ca.clone(), ra.clone()], &[2, 2], DType::F32)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Device {
                device: Device::Cpu,
                found: Device::Reference,
                ..
            }
        ),
        "{e}"
    );
    let e = backend::get(REF)
        .execute(&Op::Unary(UnaryOp::Exp), vec![ca], &[2, 2], DType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[unary]")
            && e.contains("input on device cpu")
            && e.contains("runs on reference"),
        "{e}"
    );
}

#[test]
fn external_bytes_are_read_in_place() {
    let data: Vec<u8> = (0..64u8).collect();
    let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(data);
    let base = (*owner).as_ref().as_ptr() as usize;
    // Aligned: a view of the owner's bytes, no copy, and never written in place.
    let t = Tensor::from_external(owner.clone(), 8, &[2, 3], DType::F16).unwrap();
    let a = t.array().unwrap();
    assert_eq!(a.host_bytes().unwrap().as_ptr() as usize, base + 8);
    assert_eq!(a.host_bytes().unwrap(), &(*owner).as_ref()[8..20]);
    let mut only = Array::from_external(owner.clone(), 8, &[2, 3], DType::F16).unwrap();
    assert!(!only.is_unique(), "mapped bytes are never written in place");
    let doubled = t.add(&t).unwrap().to_vec::<half::f16>().unwrap();
    assert_eq!(doubled.len(), 6);
    // Misaligned for f32 (owner allocations are at least 4-aligned): copied.
    let m = Tensor::from_external(owner.clone(), 1, &[3], DType::F32).unwrap();
    let mb = m.array().unwrap();
    assert_ne!(mb.host_bytes().unwrap().as_ptr() as usize, base + 1);
    assert_eq!(mb.host_bytes().unwrap(), &(*owner).as_ref()[1..13]);
    // Out of range (and overflowing) requests are errors, not panics.
    for (offset, shape) in [
        (60usize, vec![2usize]),
        (usize::MAX - 2, vec![4]),
        (0, vec![usize::MAX, 2]),
    ] {
        let e = Tensor::from_external(owner.clone(), offset, &shape, DType::F32);
        assert!(e.is_err(), "offset {offset} shape {shape:?}");
    }
}

#[test]
fn storage_sizes_are_checked() {
    assert_eq!(DType::F32.storage_bytes(&[3, 7]).unwrap(), 84);
    assert_eq!(DType::Bool.storage_bytes(&[]).unwrap(), 1);
    assert_eq!(DType::I64.storage_bytes(&[5, 0]).unwrap(), 0);
    let e = DType::F64
        .storage_bytes(&[1 << 62, 2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("f64") && e.contains("isize::MAX"), "{e}");
    let e = DType::U8
        .storage_bytes(&[1 << 40, 1 << 40])
        .unwrap_err()
        .to_string();
    assert!(e.contains("more elements than usize holds"), "{e}");
    let bytes = [0u8; 12];
    assert!(Tensor::from_bytes_on(&bytes, &[2], DType::F32, REF).is_err());
    assert!(Tensor::from_bytes_on(&bytes, &[3], DType::F32, REF).is_ok());
}

#[test]
fn fusion_is_decided_by_the_plan_devices_backend() {
    let f = compile(|xs: &[Tensor]| Ok(vec![xs[0].mul_scalar(2.0)?.exp()?.add_scalar(1.0)?]));
    let steps = |d: Device, dtype: DType| {
        let x = Tensor::ones_on(&[7], dtype, d).unwrap();
        f.plan(&[x]).unwrap().op_frequencies()
    };
    // The CPU fuses through f32 registers only; the reference fuses any dtype.
    assert_eq!(steps(Device::Cpu, DType::F32), [("fused", 1)]);
    assert_eq!(
        steps(Device::Cpu, DType::F64)
            .iter()
            .map(|s| s.1)
            .sum::<usize>(),
        3
    );
    assert_eq!(steps(REF, DType::F64), [("fused", 1)]);
    let x = Tensor::rand_uniform_on(&[7], -1.0, 1.0, 3, DType::F64, REF).unwrap();
    let fused = f.call(std::slice::from_ref(&x)).unwrap().remove(0);
    let eager = x
        .mul_scalar(2.0)
        .unwrap()
        .exp()
        .unwrap()
        .add_scalar(1.0)
        .unwrap();
    assert_eq!(
        values(&fused),
        values(&eager),
        "fused and eager agree exactly"
    );
}
