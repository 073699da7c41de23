//! Fallback telemetry and strict mode (its own test binary: the switch is global).

use emily::fast::{self, RopeOptions};
use emily::{telemetry, DType, Tensor};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn tensors_and_compiled_plans_are_shareable() {
    assert_send_sync::<Tensor>();
    assert_send_sync::<emily::Array>();
    assert_send_sync::<emily::compile::Plan>();
}

#[test]
fn fallbacks_are_counted_and_strict_mode_makes_them_errors() {
    // The CPU has no fused f64 kernels: f64 inputs fall back to the decomposition.
    let x = Tensor::randn(&[3, 16], 0.0, 1.0, 1, DType::F64).unwrap();
    let before = telemetry::counters().fallbacks;
    let y = fast::rope(&x, RopeOptions::new(16)).unwrap();
    assert!(telemetry::counters().fallbacks > before, "fallback counted");
    assert_eq!(y.shape(), x.shape());
    assert!(y.to_vec::<f64>().unwrap().iter().all(|v| v.is_finite()));

    telemetry::set_strict_fallbacks(true);
    let e = fast::rms_norm(&x, None, 1e-5).unwrap_err().to_string();
    telemetry::set_strict_fallbacks(false);
    assert!(e.contains("[rms_norm]") && e.contains("strict"), "{e}");
    // f32 has a fused kernel: no error even in strict mode.
    telemetry::set_strict_fallbacks(true);
    let ok = fast::rms_norm(&x.cast(DType::F32).unwrap(), None, 1e-5);
    telemetry::set_strict_fallbacks(false);
    assert!(ok.is_ok());
}
