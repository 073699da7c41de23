//! Runs one test of the current test binary again in child processes, one
//! per `EMILY_ISA` cap: the engine choice is made once per process, so each
//! cap needs a process of its own.

use std::process::Command;

/// Re-runs test `test` (an exact name) in one child per cap in `caps` (`""`
/// = no cap) with `EMILY_ISA` set to it, `child_marker` set to it (the test
/// checks this variable to do its work instead of spawning), and one pool
/// thread; fails with the child's output if any child fails or did not
/// run exactly that one test.
pub fn run_under_isa_caps(test: &str, child_marker: &str, caps: &[&str]) {
    let exe = std::env::current_exe().expect("test binary path");
    for &cap in caps {
        let child = Command::new(&exe)
            .args(["--exact", test, "--test-threads", "1"])
            .env("EMILY_ISA", cap)
            .env(child_marker, cap)
            .env("EMILY_NUM_THREADS", "1")
            .output()
            .expect("run the test binary");
        let stdout = String::from_utf8_lossy(&child.stdout);
        assert!(
            child.status.success(),
            "{test}: child with EMILY_ISA={cap} failed:\n{stdout}{}",
            String::from_utf8_lossy(&child.stderr)
        );
        // A misspelt name would run nothing and still succeed.
        assert!(
            stdout.contains("test result: ok. 1 passed"),
            "{test}: child with EMILY_ISA={cap} did not run exactly that test:\n{stdout}"
        );
    }
}
