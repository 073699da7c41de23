//! GGUF reading and writing: every metadata value type round-trips, tensor
//! infos and data come back at the aligned offsets, hostile files fail with
//! errors naming the field, and the fetched SmolLM2 file parses.

mod common;

use std::sync::Arc;

use common::llm::{llm_model, SMOLLM2};
use emily_models::gguf::{Array, GgmlType, GgufError, GgufFile, GgufWriter, Value};

fn parse(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::parse(Arc::new(bytes), "test.gguf")
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A small file: every scalar type, arrays of several types (nested too) and
/// three tensors of different types and ranks.
fn sample() -> GgufWriter {
    let mut w = GgufWriter::new();
    let values = [
        ("a.u8", Value::U8(200)),
        ("a.i8", Value::I8(-7)),
        ("a.u16", Value::U16(60000)),
        ("a.i16", Value::I16(-30000)),
        ("a.u32", Value::U32(4_000_000_000)),
        ("a.i32", Value::I32(-2_000_000_000)),
        ("a.f32", Value::F32(1e-5)),
        ("a.bool", Value::Bool(true)),
        ("a.string", Value::String("héllo ▁world".into())),
        ("a.u64", Value::U64(u64::MAX)),
        ("a.i64", Value::I64(i64::MIN)),
        ("a.f64", Value::F64(std::f64::consts::PI)),
        (
            "a.strings",
            Value::Array(Array::String(vec!["x".into(), "".into(), "yz".into()])),
        ),
        ("a.f32s", Value::Array(Array::F32(vec![0.5, -1.0, 3.25]))),
        ("a.i32s", Value::Array(Array::I32(vec![1, -2, 3]))),
        ("a.bools", Value::Array(Array::Bool(vec![true, false]))),
        (
            "a.nested",
            Value::Array(Array::Array(vec![
                Array::U8(vec![1, 2]),
                Array::String(vec!["n".into()]),
            ])),
        ),
        ("a.empty", Value::Array(Array::U64(vec![]))),
    ];
    for (k, v) in values {
        w.add_metadata(k, v);
    }
    let data: Vec<f32> = (0..21).map(|i| i as f32 * 0.5 - 3.0).collect();
    w.add_tensor("t.f32", &[3, 7], GgmlType::F32, f32_bytes(&data))
        .unwrap();
    w.add_tensor("t.q8", &[2, 64], GgmlType::Q8_0, vec![7u8; 2 * 2 * 34])
        .unwrap();
    w.add_tensor("t.i8", &[5], GgmlType::I8, vec![1, 2, 3, 4, 5])
        .unwrap();
    w
}

#[test]
fn every_value_type_and_tensor_round_trips() {
    let w = sample();
    let f = parse(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.get("a.u8"), Some(&Value::U8(200)));
    assert_eq!(f.get("a.i64"), Some(&Value::I64(i64::MIN)));
    assert_eq!(f.get("a.u64"), Some(&Value::U64(u64::MAX)));
    assert_eq!(f.f32("a.f32").unwrap(), 1e-5);
    assert_eq!(f.str("a.string").unwrap(), "héllo ▁world");
    assert_eq!(f.strings("a.strings").unwrap(), ["x", "", "yz"]);
    assert_eq!(
        f.array("a.i32s").unwrap().to_i64s().unwrap(),
        vec![1, -2, 3]
    );
    assert_eq!(
        f.get("a.nested"),
        Some(&Value::Array(Array::Array(vec![
            Array::U8(vec![1, 2]),
            Array::String(vec!["n".into()])
        ])))
    );
    assert_eq!(f.metadata().len(), 18);
    assert_eq!(f.usize("a.u32").unwrap(), 4_000_000_000);
    assert!(matches!(f.usize("a.i8"), Err(GgufError::KeyType { .. })));
    assert!(matches!(f.str("nope"), Err(GgufError::MissingKey { .. })));

    let t = f.tensor("t.f32").unwrap();
    assert_eq!(t.dims, vec![7, 3], "dims are innermost first");
    assert_eq!(t.shape(), vec![3, 7]);
    assert_eq!(t.ggml_type, GgmlType::F32);
    let got: Vec<f32> = f
        .tensor_bytes(t)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got[20], 7.0);
    let q = f.tensor("t.q8").unwrap();
    assert_eq!((q.size, q.numel()), (136, 128));
    assert!(f.tensor_bytes(q).iter().all(|&b| b == 7));
    for t in f.tensors() {
        assert_eq!(f.tensor_file_offset(t) % f.alignment(), 0, "{}", t.name);
    }
    assert_eq!(f.tensor_bytes(f.tensor("t.i8").unwrap()), [1, 2, 3, 4, 5]);
    assert!(matches!(
        f.tensor("missing"),
        Err(GgufError::MissingTensor { .. })
    ));
}

#[test]
fn a_custom_alignment_is_honoured() {
    let mut w = sample();
    w.add_metadata("general.alignment", Value::U32(64));
    let f = parse(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.alignment(), 64);
    for t in f.tensors() {
        assert_eq!(f.tensor_file_offset(t) % 64, 0);
    }
}

fn format_error(bytes: Vec<u8>) -> (String, String) {
    match parse(bytes) {
        Err(GgufError::Format { field, msg, path }) => {
            assert_eq!(path.to_str(), Some("test.gguf"));
            (field, msg)
        }
        Err(e) => panic!("expected a format error, got {e}"),
        Ok(_) => panic!("a bad file parsed"),
    }
}

#[test]
fn every_truncation_fails_with_a_format_error() {
    let bytes = sample().to_bytes().unwrap();
    for len in 0..bytes.len() {
        // Only trailing data padding may be cut without losing tensor bytes.
        let cut = bytes[..len].to_vec();
        match parse(cut) {
            Err(GgufError::Format { .. }) => {}
            Err(e) => panic!("length {len}: unexpected error {e}"),
            Ok(f) => {
                // Parsed only if every tensor still lies inside the cut file.
                let last = f.tensors().iter().map(|t| f.tensor_file_offset(t) + t.size);
                assert!(last.max().unwrap() <= len, "length {len} parsed");
            }
        }
    }
    let (field, msg) = format_error(bytes[..bytes.len() - 10].to_vec());
    assert!(
        field.contains("t.i8") || field.contains("data"),
        "{field}: {msg}"
    );
}

/// Offset of the first byte after `needle` in `bytes`.
fn after(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle")
        + needle.len()
}

#[test]
fn hostile_headers_fail_clearly() {
    let good = sample().to_bytes().unwrap();

    let mut b = good.clone();
    b[..4].copy_from_slice(b"GGUX");
    assert_eq!(format_error(b).0, "magic");

    let mut b = good.clone();
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(format_error(b).1.contains("version 1"));

    // A tensor count of 2^60.
    let mut b = good.clone();
    b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let (field, msg) = format_error(b);
    assert_eq!(field, "tensor_count", "{msg}");

    // A metadata count of u64::MAX.
    let mut b = good.clone();
    b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(format_error(b).0, "metadata_kv_count");

    // The first key's length claims 2^40 bytes.
    let mut b = good.clone();
    b[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(format_error(b).0, "metadata[0].key");

    // An array of strings whose count is huge.
    let mut b = good.clone();
    let at = after(&b, b"a.strings") + 4 + 4; // value type, element type
    b[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let (field, msg) = format_error(b);
    assert!(field.contains("a.strings"), "{field}: {msg}");

    // An unknown metadata value type.
    let mut b = good.clone();
    let at = after(&b, b"a.u8");
    b[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let (field, msg) = format_error(b);
    assert!(
        field.contains("a.u8") && msg.contains("99"),
        "{field}: {msg}"
    );

    // Tensor infos: the layout after the name is n_dims, dims, type, offset.
    let info = |b: &[u8], name: &[u8]| after(b, name);
    let mut b = good.clone();
    let at = info(&b, b"t.q8") + 4 + 16;
    b[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    let (field, msg) = format_error(b);
    assert!(
        field.contains("t.q8") && field.ends_with("type") && msg.contains("77"),
        "{field}: {msg}"
    );

    let mut b = good.clone();
    let at = info(&b, b"t.q8") + 4 + 16 + 4;
    b[at..at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    let (field, msg) = format_error(b);
    assert!(
        field.contains("t.q8") && msg.contains("past the end"),
        "{field}: {msg}"
    );

    let mut b = good.clone();
    let at = info(&b, b"t.q8") + 4 + 16 + 4;
    b[at..at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    let (field, _) = format_error(b);
    assert!(field.contains("t.q8"), "{field}");

    let mut b = good.clone();
    let at = info(&b, b"t.q8") + 4 + 16 + 4;
    b[at..at + 8].copy_from_slice(&3u64.to_le_bytes());
    assert!(format_error(b).1.contains("alignment"));

    // Dimensions whose product overflows.
    let mut b = good.clone();
    let at = info(&b, b"t.f32") + 4;
    b[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    b[at + 8..at + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let (field, msg) = format_error(b);
    assert!(field.contains("t.f32"), "{field}: {msg}");

    // A Q8_0 row that is not a whole number of blocks.
    let mut b = good.clone();
    let at = info(&b, b"t.q8") + 4;
    b[at..at + 8].copy_from_slice(&33u64.to_le_bytes());
    assert!(format_error(b).1.contains("block size"));

    let mut b = good.clone();
    let at = info(&b, b"t.i8");
    b[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(format_error(b).0.ends_with("n_dims"));
}

#[test]
fn the_writer_rejects_inconsistent_tensors() {
    let mut w = GgufWriter::new();
    assert!(w
        .add_tensor("x", &[2, 3], GgmlType::F32, vec![0; 23])
        .is_err());
    assert!(w
        .add_tensor("x", &[2, 33], GgmlType::Q8_0, vec![0; 68])
        .is_err());
    w.add_tensor("x", &[2, 3], GgmlType::F32, vec![0; 24])
        .unwrap();
    assert!(w.add_tensor("x", &[1], GgmlType::F32, vec![0; 4]).is_err());
}

#[test]
fn a_missing_file_names_its_path() {
    let e = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model.gguf"), "{e}");
}

#[test]
fn smollm2_header() {
    let Some(path) = llm_model(SMOLLM2) else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.usize("llama.block_count").unwrap(), 30);
    assert_eq!(f.usize("llama.embedding_length").unwrap(), 576);
    assert_eq!(f.strings("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(f.tensors().len(), 272);
    let count = |t| f.tensors().iter().filter(|i| i.ggml_type == t).count();
    assert_eq!(
        (
            count(GgmlType::Q4_1),
            count(GgmlType::Q8_0),
            count(GgmlType::F32)
        ),
        (210, 1, 61)
    );
    let e = f.tensor("token_embd.weight").unwrap();
    assert_eq!(e.shape(), vec![49152, 576]);
}
