//! The buffer pool's footprint: live plus parked bytes stay within the most
//! bytes ever live at once, even when phases use different size classes.
//! Buffers trimmed and then asked for again raise the bound (phases cycle).
//! One test in its own binary, so no other test shares the global pool.

use emily::memory::{self, HostBuffer};

const MIB: usize = 1 << 20;

/// Live plus parked pool bytes.
fn footprint() -> usize {
    let s = memory::stats();
    s.active_bytes + s.cached_bytes
}

#[test]
fn phases_of_different_sizes_share_the_parked_bytes() {
    memory::bound_footprint(true);
    // Phase A: four 3 MiB buffers live at once (12 MiB), then parked.
    let a: Vec<HostBuffer> = (0..4)
        .map(|_| HostBuffer::zeroed(3 * MIB).unwrap())
        .collect();
    let peak_a = memory::stats().peak_bytes;
    drop(a);
    assert!(memory::stats().cached_bytes >= 12 * MIB);
    // Phase B: other sizes (5 MiB, 6 MiB), fewer bytes live than A's peak.
    let b: Vec<HostBuffer> = [5 * MIB, 6 * MIB - 4096]
        .iter()
        .map(|&n| HostBuffer::zeroed(n).unwrap())
        .collect();
    let live_b = memory::stats().active_bytes;
    assert!(live_b < peak_a, "{live_b} vs {peak_a}");
    // A's parked buffers made room for B's: nothing beyond A's peak.
    assert!(
        footprint() <= peak_a,
        "footprint {} MiB beyond the peak {} MiB",
        footprint() / MIB,
        peak_a / MIB
    );
    drop(b);
    // Phase C: more live than ever before; the footprint follows the new peak.
    let c: Vec<HostBuffer> = (0..3)
        .map(|_| HostBuffer::zeroed(9 * MIB).unwrap())
        .collect();
    let peak_c = memory::stats().peak_bytes;
    assert!(peak_c > peak_a);
    assert!(footprint() <= peak_c, "{} vs {peak_c}", footprint());
    // Buffers of a class seen before are still reused.
    drop(c);
    let parked = memory::stats().cached_bytes;
    let again = HostBuffer::zeroed(9 * MIB).unwrap();
    assert_eq!(
        memory::stats().cached_bytes + memory::size_class(9 * MIB),
        parked,
        "a parked 9 MiB buffer is reused"
    );
    drop(again);
    // Phase A again: its buffers were trimmed, so the phases cycle; the
    // bound grows by what comes back, and from then on both phases keep
    // their buffers instead of re-faulting them every cycle.
    let bound_before = memory::footprint_bound().unwrap();
    let a: Vec<HostBuffer> = (0..4)
        .map(|_| HostBuffer::zeroed(3 * MIB).unwrap())
        .collect();
    assert_eq!(
        memory::footprint_bound().unwrap(),
        bound_before + 4 * memory::size_class(3 * MIB),
        "A's four trimmed buffers came back"
    );
    drop(a);
    let b: Vec<HostBuffer> = [5 * MIB, 6 * MIB - 4096]
        .iter()
        .map(|&n| HostBuffer::zeroed(n).unwrap())
        .collect();
    drop(b);
    let parked = memory::stats().cached_bytes;
    let cycle: Vec<HostBuffer> = [3 * MIB, 3 * MIB, 5 * MIB, 6 * MIB - 4096, 9 * MIB]
        .iter()
        .map(|&n| HostBuffer::zeroed(n).unwrap())
        .collect();
    let taken: usize = cycle.iter().map(|b| memory::size_class(b.len())).sum();
    assert_eq!(
        memory::stats().cached_bytes + taken,
        parked,
        "every phase's buffers are parked and reused"
    );
    drop(cycle);
}
