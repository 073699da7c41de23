//! Running a PyTorch peer script from `bench/peers/` in `bench/peers/.venv`.

use std::path::Path;
use std::process::Command;

/// Runs `bench/peers/<script>` with `args` in the peers' venv, echoing its
/// output; its lines, or none when the venv is not set up or the script
/// fails (said on stdout).
pub fn run(script: &str, args: &[String]) -> Vec<String> {
    let python = Path::new("bench/peers/.venv/bin/python");
    if !python.is_file() {
        println!("peer torch: not set up (bash bench/peers/setup-torch-venv.sh)");
        return Vec::new();
    }
    let out = Command::new(python)
        .arg(Path::new("bench/peers").join(script))
        .args(args)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            print!("{text}");
            text.lines().map(str::to_string).collect()
        }
        Ok(o) => {
            println!("peer torch: failed\n{}", String::from_utf8_lossy(&o.stderr));
            Vec::new()
        }
        Err(e) => {
            println!("peer torch: failed to start ({e})");
            Vec::new()
        }
    }
}
