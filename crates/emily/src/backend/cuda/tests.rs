//! Tests that need no GPU: every kernel compiles through NVRTC for sm_90
//! (skipped with a message when libnvrtc is absent), and a missing driver is
//! a clear error.

use std::collections::BTreeMap;

use super::sources::{every_kernel, LIBRARIES, PRELUDE};
use super::*;

/// Every instantiation, grouped per library into one translation unit (one
/// NVRTC call per library instead of one per kernel), plus the generated
/// fused programs one by one.
#[test]
fn every_kernel_compiles_for_sm90() {
    if let Err(why) = compiler::nvrtc_available() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut per_lib: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut count = 0usize;
    kernels_catalogue(&mut |k: Kernel| {
        per_lib.entry(k.lib).or_default().push(k.define.clone());
        count += 1;
    });
    assert!(count > 200, "catalogue lists {count} kernels");
    for lib in LIBRARIES {
        let defines = per_lib.remove(lib.name).unwrap_or_default();
        assert!(!defines.is_empty(), "library {} has no kernel", lib.name);
        let mut src = String::from(PRELUDE);
        for d in lib.deps {
            src.push_str(d);
        }
        src.push_str(lib.body);
        for d in &defines {
            src.push('\n');
            src.push_str(d);
        }
        src.push('\n');
        let t0 = std::time::Instant::now();
        let image = compiler::compile(lib.name, &src, (9, 0))
            .unwrap_or_else(|e| panic!("library {}: {e}", lib.name));
        assert!(image.len() > 1000, "{}: {} bytes", lib.name, image.len());
        eprintln!(
            "{}: {} kernels, {:.1} s",
            lib.name,
            defines.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    assert!(
        per_lib.is_empty(),
        "kernels of unknown libraries: {per_lib:?}"
    );
    for (name, src) in codegen::representative_programs() {
        compiler::compile(&name, &src, (9, 0)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Every kernel of the catalogue also compiles alone (spot-check the
    // first of each library: the unit built by `Kernel::source`).
    let singles = every_kernel();
    assert!(singles.len() > count);
}

/// A compile error comes back as an error naming the kernel, with NVRTC's log.
#[test]
fn broken_source_is_an_error() {
    if compiler::nvrtc_available().is_err() {
        eprintln!("skipped: NVRTC not found");
        return;
    }
    let e = compiler::compile(
        "broken",
        "extern \"C\" __global__ void k() { nope; }",
        (9, 0),
    )
    .unwrap_err();
    assert!(
        e.contains("kernel broken does not compile") && e.contains("nope"),
        "{e}"
    );
}

/// Without a driver (or device), every use of the device is an error, not a panic.
#[test]
fn missing_device_is_an_error() {
    let dev = Device::Cuda(7);
    let r = crate::Tensor::from_slice(&[1.0f32, 2.0], &[2]).and_then(|t| t.to_device(dev));
    match r {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("cuda:7")
                    && (msg.contains("not found") || msg.contains("no CUDA device")),
                "{msg}"
            );
        }
        // A machine with eight GPUs: the upload worked.
        Ok(t) => assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0]),
    }
    let fast = crate::fast::FastOp::RmsNorm {
        eps: 1e-5,
        has_weight: false,
    };
    if !driver_present() {
        let why = backend(7)
            .supports_fast(&fast, &[(&[2, 4], DType::F32)])
            .unwrap_err();
        assert!(why.contains("CUDA driver not found"), "{why}");
    }
}
