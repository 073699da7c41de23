//! Packed GEMM weights, prepared once per weight buffer.
//!
//! A half-precision B operand next to f32 activations is a weight (the
//! matmul dtype rule); the low-precision engines read it packed
//! ([`PackedBf16`], [`PackedInt8`]). The packed form is computed at the first
//! product that needs it and kept while the weight's buffer lives: entries
//! hold a weak handle on the buffer, which identifies it (the address cannot
//! be reused while the handle exists) and keeps in-place writes off it, so a
//! cached form can never go stale. Entries of dropped buffers are pruned on
//! insert. Compiled plans hold their weights as constants, so a plan's
//! weights are packed on its first run and reused by every later run.
//!
//! A weight can also be packed once, at load, into its own storage
//! ([`Tensor::pack_int8_weight`]): the array then holds only the packed int8
//! form ([`PackedInt8Weight`]), so the float bytes it was packed from can be
//! dropped (or their file pages released) instead of staying resident beside
//! the packed copy. Such an array is read by the int8 products alone.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use emily_kernels::gemm::{MatRef, PackedBf16, PackedInt8};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::array::Storage;
use crate::error::{dtype_err, invalid, Result};
use crate::storage::BackendBuffer;
use crate::{Array, DType, Device, Tensor};

/// A weight's own storage in a form only some CPU kernels read (packed at
/// load): the form, the size of the array it stands for (its shape and
/// dtype, not the form's), and what asking for its host bytes says.
pub(crate) struct OwnForm<T> {
    pub(crate) form: T,
    logical_bytes: usize,
    no_host: &'static str,
}

impl<T> OwnForm<T> {
    /// `form` standing for an array of `logical_bytes`; `no_host` is the
    /// error a host read gets.
    pub(crate) fn new(form: T, logical_bytes: usize, no_host: &'static str) -> OwnForm<T> {
        OwnForm {
            form,
            logical_bytes,
            no_host,
        }
    }
}

impl<T: Send + Sync + 'static> BackendBuffer for OwnForm<T> {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn len_bytes(&self) -> usize {
        self.logical_bytes
    }

    fn to_host(&self) -> Result<Vec<u8>> {
        Err(invalid("to_host", self.no_host))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A weight packed at load ([`Tensor::pack_int8_weight`]): the int8 codes
/// and per-column scales of its `k × n` view, and whether that view is the
/// stored matrix transposed. Only the int8 products read it.
pub(crate) struct PackedInt8Form {
    packed: Arc<PackedInt8>,
    transposed: bool,
}

/// The storage of a weight packed at load.
pub(crate) type PackedInt8Weight = OwnForm<PackedInt8Form>;

/// Whether `a` is a weight packed at load ([`PackedInt8Weight`]).
pub(crate) fn is_packed_int8(a: &Array) -> bool {
    a.buffer::<PackedInt8Weight>().is_some()
}

impl Tensor {
    /// This 2-D float weight (f32, f16 or bf16, on the CPU) quantized and
    /// packed for [`Tensor::matmul_int8`] now, as a tensor of the same shape
    /// and dtype whose storage is the packed int8 form alone: the float bytes
    /// are not kept by it (drop `self`, or release a memory map's pages, to
    /// free them). `transposed`: the weight is stored `(n, k)` and multiplied
    /// as `x.matmul_int8(&w.t()?)` (a `Linear` weight); otherwise it is the
    /// `(k, n)` operand itself. The products are those of the unpacked
    /// weight exactly (the same codes and scales). The result is read only
    /// by the int8 products in the layout it was packed for: any other op,
    /// or reading it back to the host, is an error.
    pub fn pack_int8_weight(&self, transposed: bool) -> Result<Tensor> {
        let op = "pack_int8_weight";
        if self.device() != Device::Cpu {
            return Err(invalid(
                op,
                format!("the weight is on {:?}, not the CPU", self.device()),
            ));
        }
        if self.shape().len() != 2 {
            return Err(invalid(
                op,
                format!("expected a 2-D weight, got shape {:?}", self.shape()),
            ));
        }
        let array = self.array()?;
        let packed = int8_weights(&array, transposed)?;
        let buffer = PackedInt8Weight::new(
            PackedInt8Form { packed, transposed },
            array.dtype().storage_bytes(array.shape())?,
            "a weight packed for the int8 products (Tensor::pack_int8_weight) has no host form",
        );
        Ok(Tensor::from_array(Array::from_buffer(
            Box::new(buffer),
            array.shape(),
            array.dtype(),
        )?))
    }
}

/// What a cache entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Form {
    Bf16,
    Int8,
    /// [`bf16_conv_taps`].
    ConvTaps,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    buffer: usize,
    shape: Vec<usize>,
    transposed: bool,
    form: Form,
}

struct Entry {
    buffer: Weak<Storage>,
    packed: Arc<dyn Any + Send + Sync>,
}

fn cache() -> &'static Mutex<HashMap<Key, Entry>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<Key, Entry>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The `k × n` view of a 2-D weight `w`: `w` itself, or `wᵀ` when
/// `transposed` (weights stored `(n, k)`, PyTorch `Linear` layout).
fn view<'a, T: Copy>(data: &'a [T], shape: &[usize], transposed: bool) -> MatRef<'a, T> {
    let (r, c) = (shape[0], shape[1]);
    if transposed {
        MatRef::transposed(data, c, r)
    } else {
        MatRef::row_major(data, r, c)
    }
}

/// The cached packed form of `w`, computed by `make` on a miss.
fn get_or_pack<P: Any + Send + Sync>(
    w: &Array,
    transposed: bool,
    form: Form,
    make: impl FnOnce() -> Result<P>,
) -> Result<Arc<P>> {
    let handle = w.buffer_handle();
    let key = Key {
        buffer: handle.as_ptr() as *const u8 as usize,
        shape: w.shape().to_vec(),
        transposed,
        form,
    };
    if let Some(e) = cache().lock().expect("packed-weight cache").get(&key) {
        if e.buffer.ptr_eq(&handle) && e.buffer.strong_count() > 0 {
            if let Ok(p) = e.packed.clone().downcast::<P>() {
                return Ok(p);
            }
        }
    }
    let packed = Arc::new(make()?);
    let mut c = cache().lock().expect("packed-weight cache");
    c.retain(|_, e| e.buffer.strong_count() > 0);
    c.insert(
        key,
        Entry {
            buffer: handle,
            packed: packed.clone(),
        },
    );
    Ok(packed)
}

/// `w` (2-D, bf16) packed for the bf16 engines, as its `k × n` view.
pub(crate) fn bf16_weights(w: &Array, transposed: bool) -> Result<Arc<PackedBf16>> {
    get_or_pack(w, transposed, Form::Bf16, || match w.dtype() {
        DType::BF16 => Ok(PackedBf16::from_bf16(view(
            w.as_slice::<bf16>(),
            w.shape(),
            transposed,
        ))),
        other => Err(dtype_err(
            "matmul",
            other,
            ", bf16 engine weights must be bf16",
        )),
    })
}

/// A convolution's bf16 weight `(C_out, C_in, K)` packed for the bf16
/// engines as the `(K·C_in) × C_out` matrix of a channels-last convolution:
/// row `k·C_in + c` holds tap `k` of input channel `c` for every output.
pub(crate) fn bf16_conv_taps(w: &Array) -> Result<Arc<PackedBf16>> {
    get_or_pack(w, false, Form::ConvTaps, || {
        if w.dtype() != DType::BF16 || w.shape().len() != 3 {
            return Err(dtype_err(
                "conv1d_channels_last",
                w.dtype(),
                format!(
                    ", the bf16 engine needs a bf16 (C_out, C_in, K) weight, got {:?}",
                    w.shape()
                ),
            ));
        }
        let (cout, cin, k) = (w.shape()[0], w.shape()[1], w.shape()[2]);
        let ws = w.as_slice::<bf16>();
        Ok(PackedBf16::from_rows(k * cin, cout, |row, dst| {
            let (tap, c) = (row / cin, row % cin);
            for (o, d) in dst.iter_mut().enumerate() {
                *d = ws[(o * cin + c) * k + tap].to_f32();
            }
        }))
    })
}

/// Half-precision values as f32, by the vectorised slice conversion (one F16C
/// dispatch per element was ~5 % of a Whisper base load).
fn widened<H>(h: &[H]) -> Vec<f32>
where
    [H]: HalfFloatSliceExt,
{
    let mut f = vec![0f32; h.len()];
    h.convert_to_f32_slice(&mut f);
    f
}

/// `w` (2-D, any float type) quantized per output column to s8 and packed
/// for the int8 engines, as its `k × n` view.
pub(crate) fn int8_weights(w: &Array, transposed: bool) -> Result<Arc<PackedInt8>> {
    if let Some(OwnForm { form: own, .. }) = w.buffer::<PackedInt8Weight>() {
        return if own.transposed == transposed {
            Ok(own.packed.clone())
        } else {
            Err(invalid(
                "matmul_int8",
                format!(
                    "the weight {:?} was packed {} but is multiplied {}",
                    w.shape(),
                    if own.transposed {
                        "transposed"
                    } else {
                        "as stored"
                    },
                    if transposed {
                        "transposed"
                    } else {
                        "as stored"
                    },
                ),
            ))
        };
    }
    get_or_pack(w, transposed, Form::Int8, || {
        // f32 weights are read in place, half ones widened (see `widened`).
        let f: std::borrow::Cow<'_, [f32]> = match w.dtype() {
            DType::F32 => std::borrow::Cow::Borrowed(w.as_slice::<f32>()),
            DType::F16 => widened(w.as_slice::<f16>()).into(),
            DType::BF16 => widened(w.as_slice::<bf16>()).into(),
            other => {
                return Err(dtype_err(
                    "matmul_int8",
                    other,
                    ", weights must be f32, f16 or bf16",
                ))
            }
        };
        Ok(PackedInt8::quantize(view(&f, w.shape(), transposed)))
    })
}
