use emily::{compile, DType, Tensor};
fn t(name: &str, f: impl Fn()) {
    f();
    f();
    let mut v: Vec<f64> = (0..7)
        .map(|_| {
            let s = std::time::Instant::now();
            for _ in 0..20 {
                f();
            }
            s.elapsed().as_secs_f64() * 1e3 / 20.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    println!("{name}: {:.3} ms", v[3]);
}
fn main() {
    let n = 4 << 20;
    let x = Tensor::randn(&[n], 0.0, 1.0, 3, DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    let w = Tensor::randn(&[n], 0.0, 1.0, 4, DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    let b = Tensor::randn(&[n], 0.0, 1.0, 5, DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    let args = [x.clone(), w.clone(), b.clone()];
    let full = compile(|xs: &[Tensor]| Ok(vec![xs[0].mul(&xs[1])?.add(&xs[2])?.gelu()?]));
    let lin = compile(|xs: &[Tensor]| Ok(vec![xs[0].mul(&xs[1])?.add(&xs[2])?]));
    t("fused x*w+b then gelu", || {
        full.call(&args).unwrap();
    });
    t("fused x*w+b", || {
        lin.call(&args).unwrap();
    });
    t("eager gelu(x)", || {
        x.gelu().unwrap().eval().unwrap();
    });
    t("eager chain", || {
        x.mul(&w)
            .unwrap()
            .add(&b)
            .unwrap()
            .gelu()
            .unwrap()
            .eval()
            .unwrap();
    });
}
