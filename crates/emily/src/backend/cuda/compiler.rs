//! NVRTC: CUDA C source to a cubin for one GPU architecture.
//!
//! Every kernel of the backend is CUDA C text compiled at run time for the
//! device's `sm_XY` (no CUDA toolkit at build time). Results are cached per
//! process by (source, architecture) and, unless `EMILY_CUDA_CACHE=off`, on
//! disk under `$EMILY_CUDA_CACHE` (default `$XDG_CACHE_HOME/emily/cuda` or
//! `~/.cache/emily/cuda`), so a second run skips NVRTC. A disk entry is used
//! only when the source stored beside it is byte-identical. NVRTC needs no GPU,
//! which is how CI compiles every kernel for sm_90.

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::{result as nv, sys as nvsys};

/// A compute capability, e.g. `(9, 0)` for Hopper.
pub type Arch = (u32, u32);

/// Whether libnvrtc can be opened (checked before any NVRTC call: the
/// bindings panic on a missing library).
pub fn nvrtc_available() -> Result<(), String> {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to open the library.
    if *PRESENT.get_or_init(|| unsafe { nvsys::is_culib_present() }) {
        Ok(())
    } else {
        Err(
            "NVRTC not found (libnvrtc.so.13: install the CUDA 13 toolkit or \
             `pip install nvidia-cuda-nvrtc` and add its nvidia/cu13/lib to LD_LIBRARY_PATH)"
                .into(),
        )
    }
}

/// NVRTC's version (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    nvrtc_available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; the outputs are plain ints.
    let r = unsafe { nvsys::nvrtcVersion(&mut major, &mut minor) };
    check(r, "nvrtcVersion")?;
    Ok((major, minor))
}

fn check(r: nvsys::nvrtcResult, what: &str) -> Result<(), String> {
    if r == nvsys::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(format!("{what} failed: {r:?}"))
    }
}

/// Compiles `source` (named `name` in messages) to a cubin for `arch`,
/// returning the cached image when this source was compiled before.
pub fn compile(name: &str, source: &str, arch: Arch) -> Result<Arc<Vec<u8>>, String> {
    type Cache = Mutex<HashMap<(String, Arch), Arc<Vec<u8>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (source.to_string(), arch);
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let disk = DiskEntry::new(source, arch);
    let image = match disk.as_ref().and_then(|d| d.load(source)) {
        Some(image) => image,
        None => {
            let t0 = std::time::Instant::now();
            let image = compile_uncached(name, source, arch)?;
            tracing::debug!(
                target: "emily::cuda",
                kernel = name,
                ms = t0.elapsed().as_secs_f64() * 1e3,
                bytes = image.len(),
                "nvrtc compiled"
            );
            if let Some(d) = &disk {
                d.store(source, &image);
            }
            image
        }
    };
    let image = Arc::new(image);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, image.clone());
    Ok(image)
}

/// The NVRTC options every kernel is compiled with: IEEE-accurate division,
/// square root and denormals (no fast math: results are compared with the
/// CPU backend's), C++17.
fn options(arch: Arch) -> Vec<String> {
    vec![
        format!("--gpu-architecture=sm_{}{}", arch.0, arch.1),
        "--std=c++17".into(),
        "--fmad=true".into(),
        "-DNDEBUG".into(),
    ]
}

fn compile_uncached(name: &str, source: &str, arch: Arch) -> Result<Vec<u8>, String> {
    nvrtc_available()?;
    let src = CString::new(source).map_err(|_| format!("kernel {name}: NUL in source"))?;
    let cname = CString::new(format!("{name}.cu")).expect("kernel names have no NUL");
    let prog = nv::create_program(&src, Some(&cname)).map_err(|e| format!("{e:?}"))?;
    struct Program(nvsys::nvrtcProgram);
    impl Drop for Program {
        fn drop(&mut self) {
            // SAFETY: created above, destroyed once.
            let _ = unsafe { nv::destroy_program(self.0) };
        }
    }
    let prog = Program(prog);
    // SAFETY: `prog` is a live program.
    let compiled = unsafe { nv::compile_program(prog.0, &options(arch)) };
    if compiled.is_err() {
        // SAFETY: as above.
        let log = unsafe { nv::get_program_log(prog.0) }
            .map(|l| c_text(&l))
            .unwrap_or_default();
        return Err(format!(
            "kernel {name} does not compile for sm_{}{}:\n{log}",
            arch.0, arch.1
        ));
    }
    let mut size = 0usize;
    // SAFETY: compiled program; `size` receives the cubin's length.
    check(
        unsafe { nvsys::nvrtcGetCUBINSize(prog.0, &mut size) },
        "nvrtcGetCUBINSize",
    )?;
    let mut image = vec![0u8; size];
    // SAFETY: `image` holds `size` bytes.
    check(
        unsafe { nvsys::nvrtcGetCUBIN(prog.0, image.as_mut_ptr() as *mut c_char) },
        "nvrtcGetCUBIN",
    )?;
    Ok(image)
}

fn c_text(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}

/// A cubin cached on disk: `<hash>-sm<XY>.cubin` beside the source it came
/// from (`.cu`), compared in full before use.
struct DiskEntry {
    cubin: PathBuf,
    source: PathBuf,
}

impl DiskEntry {
    fn new(source: &str, arch: Arch) -> Option<DiskEntry> {
        let dir = cache_dir()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        nvrtc_version().ok().hash(&mut h);
        let stem = format!("{:016x}-sm{}{}", h.finish(), arch.0, arch.1);
        Some(DiskEntry {
            cubin: dir.join(format!("{stem}.cubin")),
            source: dir.join(format!("{stem}.cu")),
        })
    }

    fn load(&self, source: &str) -> Option<Vec<u8>> {
        let stored = std::fs::read(&self.source).ok()?;
        (stored == source.as_bytes())
            .then(|| std::fs::read(&self.cubin).ok())
            .flatten()
    }

    /// Best effort: a cache that cannot be written only costs a recompile.
    fn store(&self, source: &str, image: &[u8]) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.cubin.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self
                .cubin
                .with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, image)?;
            std::fs::write(&self.source, source)?;
            std::fs::rename(&tmp, &self.cubin)
        };
        if let Err(e) = write() {
            tracing::debug!(target: "emily::cuda", error = %e, "kernel cache not written");
        }
    }
}

fn cache_dir() -> Option<PathBuf> {
    match std::env::var("EMILY_CUDA_CACHE") {
        Ok(v) if v == "off" || v == "0" || v.is_empty() => None,
        Ok(v) => Some(PathBuf::from(v)),
        Err(_) => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("emily").join("cuda")),
    }
}
