//! Whether AMX may be used: the CPU reports the tile instructions (CPUID) and
//! Linux granted this process the tile-data state (`arch_prctl`).
//!
//! Linux enables the 8 KiB AMX tile-data register state per process, on
//! request: a tile instruction executed before
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` succeeded faults
//! (SIGILL). The request is made once; AMX is used only when it was granted
//! and `ARCH_GET_XCOMP_PERM` confirms the bit. Any failure means "no AMX".

/// Which AMX operations may run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AmxSupport {
    /// `tdpbf16ps` (AMX-TILE + AMX-BF16, permission granted).
    pub bf16: bool,
    /// `tdpbusd` (AMX-TILE + AMX-INT8, permission granted).
    pub int8: bool,
}

/// CPUID bits and the kernel's permission; asks for the permission when the
/// CPU has the tile unit.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) fn amx_usable() -> AmxSupport {
    use std::arch::x86_64::__cpuid_count;
    let (max_leaf, leaf1, leaf7) = (
        __cpuid_count(0, 0).eax,
        __cpuid_count(1, 0),
        __cpuid_count(7, 0),
    );
    if max_leaf < 7 {
        return AmxSupport::default();
    }
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    let tile = leaf7.edx & (1 << 24) != 0;
    let bf16 = leaf7.edx & (1 << 22) != 0;
    let int8 = leaf7.edx & (1 << 25) != 0;
    if !(osxsave && tile && (bf16 || int8)) || !request_tile_permission() {
        return AmxSupport::default();
    }
    AmxSupport { bf16, int8 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub(crate) fn amx_usable() -> AmxSupport {
    AmxSupport::default()
}

/// `arch_prctl` codes and the tile-data feature number (Linux uapi
/// `asm/prctl.h`, XSAVE feature 18).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const XFEATURE_XTILEDATA: libc::c_long = 18;

/// Asks Linux for the tile-data state; true only when granted and confirmed.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_permission() -> bool {
    // SAFETY: arch_prctl with these codes only reads/writes the process's
    // XSAVE permission mask (and `mask`, a valid u64 we own).
    unsafe {
        if libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) != 0
        {
            return false;
        }
        let mut mask: u64 = 0;
        if libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut mask as *mut u64,
        ) != 0
        {
            return false;
        }
        mask & (1 << XFEATURE_XTILEDATA) != 0
    }
}
