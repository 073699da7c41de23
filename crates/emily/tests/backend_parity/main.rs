//! Every op of the catalogue on the CPU backend against the reference
//! backend (plain f64 loops), on seeded random inputs with odd shapes, for
//! every dtype each op accepts. The families take the device under test: a
//! new backend adds one `#[test]` per family calling them with its device.

#[path = "../common/mod.rs"]
mod common;
#[cfg(feature = "cuda")]
mod cuda;
mod elementwise;
mod fast;
mod harness;
mod layout;
mod quantized;
mod reduce_linalg;
mod seam;

use emily::Device;

const CPU: Device = Device::Cpu;

#[test]
fn cpu_creation_matches_reference() {
    elementwise::creation(CPU);
}

#[test]
fn cpu_unary_matches_reference() {
    elementwise::unary(CPU);
}

#[test]
fn cpu_binary_matches_reference() {
    elementwise::binary(CPU);
}

#[test]
fn cpu_where_and_cast_match_reference() {
    elementwise::select(CPU);
    elementwise::cast(CPU);
}

#[test]
fn cpu_reductions_match_reference() {
    reduce_linalg::reductions(CPU);
}

#[test]
fn cpu_softmax_matches_reference() {
    reduce_linalg::softmax(CPU);
}

#[test]
fn cpu_matmul_matches_reference() {
    reduce_linalg::matmul(CPU);
}

#[test]
fn cpu_conv1d_matches_reference() {
    reduce_linalg::conv1d(CPU);
}

#[test]
fn cpu_layout_matches_reference() {
    layout::layout(CPU);
}

#[test]
fn cpu_gather_and_slice_update_match_reference() {
    layout::gather(CPU);
    layout::slice_update(CPU);
}

#[test]
fn cpu_scatter_add_and_random_uniform_match_reference() {
    layout::scatter_add(CPU);
    layout::random_uniform(CPU);
}

#[test]
fn cpu_norms_match_reference() {
    fast::norms(CPU);
}

#[test]
fn cpu_rope_matches_reference() {
    fast::rope(CPU);
}

#[test]
fn cpu_attention_matches_reference() {
    fast::sdpa(CPU);
}

#[test]
fn cpu_compiled_plans_match_reference() {
    fast::compiled(CPU);
}

#[test]
fn cpu_quantized_matmul_matches_reference() {
    quantized::matmul(CPU);
}

#[test]
fn cpu_quantized_rows_and_casts_match_reference() {
    quantized::gather_and_cast(CPU);
}
