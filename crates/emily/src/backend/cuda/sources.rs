//! The kernel libraries: CUDA C templates compiled at run time.
//!
//! Each library is a `.cu` file of templated device code ending in
//! `DEFINE_*` macros; a kernel is the prelude, the library and one
//! `DEFINE_*(name, types…)` line, compiled when it is first launched (so only
//! the instantiations a program uses are ever compiled). [`every_kernel`]
//! lists a representative instantiation of everything, for the test that
//! compiles all of them through NVRTC without a GPU.

use crate::DType;

/// Types, conversions, math and error reports shared by every kernel.
pub const PRELUDE: &str = include_str!("kernels/prelude.cuh");

/// A library of kernel templates.
#[derive(Clone, Copy, Debug)]
pub struct Library {
    /// Short name (prefix of its kernels' names).
    pub name: &'static str,
    /// Sources included before the body (shared headers).
    pub deps: &'static [&'static str],
    /// The templates and their `DEFINE_*` macros.
    pub body: &'static str,
}

const SDPA_COMMON: &str = include_str!("kernels/sdpa_common.cuh");

/// Strided copy, fill, iota, gather, slice update, scatter-add, random.
pub const LAYOUT: Library = Library {
    name: "layout",
    deps: &[],
    body: include_str!("kernels/layout.cu"),
};
/// Reductions and softmax.
pub const REDUCE: Library = Library {
    name: "reduce",
    deps: &[],
    body: include_str!("kernels/reduce.cu"),
};
/// RMSNorm and LayerNorm.
pub const NORM: Library = Library {
    name: "norm",
    deps: &[],
    body: include_str!("kernels/norm.cu"),
};
/// Rotary position embedding.
pub const ROPE: Library = Library {
    name: "rope",
    deps: &[],
    body: include_str!("kernels/rope.cu"),
};
/// Attention on CUDA cores (any float dtype) and the split-KV combine.
pub const SDPA_SIMT: Library = Library {
    name: "sdpa_simt",
    deps: &[SDPA_COMMON],
    body: include_str!("kernels/sdpa_simt.cu"),
};
/// Flash attention on tensor cores (f16 / bf16).
pub const SDPA_MMA: Library = Library {
    name: "sdpa_mma",
    deps: &[SDPA_COMMON],
    body: include_str!("kernels/sdpa_mma.cu"),
};
/// Mixed f32 x half GEMV for decode-sized products.
pub const GEMV: Library = Library {
    name: "gemv",
    deps: &[],
    body: include_str!("kernels/gemv.cu"),
};
/// im2col for conv1d.
pub const CONV: Library = Library {
    name: "conv",
    deps: &[],
    body: include_str!("kernels/conv.cu"),
};
/// The elementwise functions the generated fused kernels call.
pub const ELEMENTWISE: &str = include_str!("kernels/elementwise.cuh");

/// Every library.
pub const LIBRARIES: [Library; 8] = [LAYOUT, REDUCE, NORM, ROPE, SDPA_SIMT, SDPA_MMA, GEMV, CONV];

/// One kernel: a library instantiated by one `DEFINE_*` line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// The library.
    pub lib: &'static str,
    /// The extern "C" name of the kernel.
    pub name: String,
    /// The instantiating macro line.
    pub define: String,
}

impl Kernel {
    /// `macro(name, args…)` of `lib`; the kernel is named `name`.
    pub fn new(lib: &Library, mac: &str, name: String, args: &[&str]) -> Kernel {
        let define = format!("{mac}({name}, {})", args.join(", "));
        Kernel {
            lib: lib.name,
            name,
            define,
        }
    }

    /// The complete source: prelude, the library's headers and body, the
    /// instantiation.
    pub fn source(&self) -> String {
        let lib = LIBRARIES
            .iter()
            .find(|l| l.name == self.lib)
            .expect("kernels come from a known library");
        let mut s = String::with_capacity(PRELUDE.len() + lib.body.len() + 4096);
        s.push_str(PRELUDE);
        for d in lib.deps {
            s.push_str(d);
        }
        s.push_str(lib.body);
        s.push('\n');
        s.push_str(&self.define);
        s.push('\n');
        s
    }
}

/// The CUDA storage type of a dtype.
pub fn ctype(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float",
        DType::F64 => "double",
        DType::F16 => "half_t",
        DType::BF16 => "bhalf_t",
        DType::I32 => "int",
        DType::I64 => "i64",
        DType::U8 => "u8",
        DType::Bool => "bool_t",
        // Raw block bytes (the backend refuses ops on quantised data before
        // any kernel is chosen).
        DType::Quantized(_) => "u8",
    }
}

/// The unsigned type that moves one element of `dtype` as raw bits.
pub fn bits_type(dtype: DType) -> &'static str {
    match dtype.size_in_bytes() {
        1 => "u8",
        2 => "u16",
        4 => "u32",
        _ => "u64",
    }
}

/// The compute type for data of `dtype` (float for f32 and smaller types
/// exact in it, double for f64 and wide integers).
pub fn compute_type(dtype: DType) -> &'static str {
    if exact_in_f32(dtype) {
        "float"
    } else {
        "double"
    }
}

/// Dtypes whose values pass exactly through f32 (the CPU engine's rule).
pub fn exact_in_f32(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::F32 | DType::F16 | DType::BF16 | DType::Bool | DType::U8
    )
}

/// One instantiation of every template of every library (every dtype each
/// kernel serves, every reduction, every attention variant), plus fused
/// programs from [`super::codegen::representative_programs`]: what CI compiles.
pub fn every_kernel() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |k: Kernel| out.push((k.name.clone(), k.source()));
    super::kernels_catalogue(&mut push);
    out.extend(super::codegen::representative_programs());
    out
}
