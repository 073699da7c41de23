//! The fused kernels against `testdata/goldens/kernels.safetensors`: float32
//! inputs with float64 outputs computed by numpy (cross-checked against torch).

use emily_kernels::fast::{
    layer_norm_f32, rms_norm_f32, rope_f32, sdpa_f32, Mask, MaskStrides, Positions, RopeParams,
    SdpaParams,
};
use safetensors::{Dtype, SafeTensors};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/goldens/kernels.safetensors"
);
const TOL: f64 = 1e-5;

struct Goldens(Vec<u8>);

impl Goldens {
    fn load() -> Self {
        Self(std::fs::read(PATH).unwrap_or_else(|e| panic!("reading {PATH}: {e}")))
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.0).expect("parsing kernels.safetensors")
    }

    fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let st = self.tensors();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        let data = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()));
        (data.collect(), t.shape().to_vec())
    }

    fn f64(&self, name: &str) -> Vec<f64> {
        let st = self.tensors();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), Dtype::F64, "{name}");
        t.data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn meta(&self, key: &str) -> String {
        let (_, meta) = SafeTensors::read_metadata(&self.0).expect("reading the header");
        let map = meta.metadata().as_ref().expect("file metadata");
        map.get(key)
            .unwrap_or_else(|| panic!("metadata {key}"))
            .clone()
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let err = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max);
    assert!(
        err < TOL,
        "{what}: max abs error {err:e} (tolerance {TOL:e})"
    );
}

#[test]
fn norms_match_goldens() {
    let g = Goldens::load();
    let (x, shape) = g.f32("rms_norm.x");
    let (w, _) = g.f32("rms_norm.weight");
    let eps: f32 = g.meta("rms_norm.eps").parse().unwrap();
    let mut out = vec![0.0; x.len()];
    rms_norm_f32(&x, Some(&w), eps, shape[2], &mut out);
    assert_close("rms_norm", &out, &g.f64("rms_norm.out"));

    let (x, shape) = g.f32("layer_norm.x");
    let (w, _) = g.f32("layer_norm.weight");
    let (b, _) = g.f32("layer_norm.bias");
    let eps: f32 = g.meta("layer_norm.eps").parse().unwrap();
    layer_norm_f32(&x, Some(&w), Some(&b), eps, shape[2], &mut out);
    assert_close("layer_norm", &out, &g.f64("layer_norm.out"));
}

#[test]
fn rope_matches_goldens() {
    let g = Goldens::load();
    let (x, s) = g.f32("rope.x");
    let mut p = RopeParams::new(s[0], s[1], s[2], s[3]);
    p.base = g.meta("rope.base").parse().unwrap();
    let mut out = vec![0.0; x.len()];
    rope_f32(&x, &mut out, &p);
    assert_close("rope", &out, &g.f64("rope.out"));
    p.positions = Positions::Offset(3);
    rope_f32(&x, &mut out, &p);
    assert_close("rope offset 3", &out, &g.f64("rope.out_offset3"));
    p.positions = Positions::Offset(0);
    p.traditional = true;
    rope_f32(&x, &mut out, &p);
    assert_close("rope traditional", &out, &g.f64("rope.out_traditional"));
}

fn run_sdpa(g: &Goldens, case: &str, mask: Mask<'_>) {
    let (q, qs) = g.f32(&format!("{case}.q"));
    let (k, ks) = g.f32(&format!("{case}.k"));
    let (v, _) = g.f32(&format!("{case}.v"));
    let mut p = SdpaParams::new(qs[0], qs[1], ks[1], qs[2], ks[2], qs[3]);
    assert_eq!(g.meta("sdpa.scale"), "1/sqrt(8)");
    p.scale = 1.0 / 8f32.sqrt();
    p.mask = mask;
    let mut out = vec![0.0; q.len()];
    sdpa_f32(&q, &k, &v, &mut out, &p);
    assert_close(case, &out, &g.f64(&format!("{case}.out")));
}

#[test]
fn sdpa_matches_goldens() {
    let g = Goldens::load();
    run_sdpa(&g, "sdpa", Mask::None);
    run_sdpa(&g, "sdpa_causal", Mask::Causal);
    run_sdpa(&g, "sdpa_gqa", Mask::None);
    let (mask, ms) = g.f32("sdpa_mask.mask");
    let strides = MaskStrides::broadcast([ms[0], ms[1], ms[2], ms[3]]);
    run_sdpa(
        &g,
        "sdpa_mask",
        Mask::Additive {
            data: &mask,
            strides,
        },
    );
}
