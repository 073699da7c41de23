//! Batch mode of `emily transcribe`: a manifest of audio files, one
//! transcript file per input under an output directory, a shard of the list
//! per machine, several files at a time, resumable.
//!
//! - **Manifest**: a text file, one audio path per line; blank lines and
//!   lines starting with `#` are skipped. Relative paths are relative to the
//!   manifest's own directory, so a manifest can travel with its data.
//! - **Outputs**: the input's path with the format's extension, mirrored
//!   under the output directory (`talks/a.wav` → `DIR/talks/a.txt`; an
//!   absolute `/data/b.flac` → `DIR/data/b.txt`), so equal file names in
//!   different folders do not collide. Two entries that map to one output are
//!   refused before anything runs.
//! - **Shards**: `--shard i/n` takes the entries whose position in the
//!   manifest (counting from 0) is `i` modulo `n`, so `n` machines given
//!   `0/n … (n-1)/n` split one list without coordination (a Kubernetes
//!   indexed Job passes `$JOB_COMPLETION_INDEX`, a Slurm array
//!   `$SLURM_ARRAY_TASK_ID`).
//! - **Resumable**: a transcript is written to a temporary name in its
//!   folder and renamed into place when complete, so an output that exists
//!   is whole; such inputs are skipped. A run that was killed leaves at most
//!   temporary files, which the next run overwrites.
//! - A failed input is reported and the rest go on; the exit status is
//!   non-zero if any failed.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// `--shard i/n`: this machine's part of the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole manifest.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the manifest entry at `position` belongs to this shard.
    pub fn owns(self, position: usize) -> bool {
        position % self.count == self.index
    }
}

/// Parses `--shard i/n` (`0 <= i < n`).
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not i/n (for example 0/4)"))?;
    let index: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("shard index `{i}` is not a number"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("shard count `{n}` is not a number"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {index}/{count}: need 0 <= i < n"));
    }
    Ok(Shard { index, count })
}

/// One manifest entry: the audio file and where its transcript goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The audio file.
    pub input: PathBuf,
    /// The transcript file.
    pub output: PathBuf,
}

/// The entries of manifest `text` (read from `manifest`) that belong to
/// `shard`, with outputs `extension` under `out_dir`. Refuses an empty
/// manifest and two entries with one output.
pub fn plan(
    manifest: &Path,
    text: &str,
    out_dir: &Path,
    extension: &str,
    shard: Shard,
) -> Result<Vec<Job>> {
    let base = manifest.parent().unwrap_or(Path::new(""));
    let entries: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if entries.is_empty() {
        bail!("{}: the manifest lists no audio files", manifest.display());
    }
    let mut seen = std::collections::HashMap::new();
    let mut jobs = Vec::new();
    for (position, (line, entry)) in entries.into_iter().enumerate() {
        let path = Path::new(entry);
        let output = out_dir.join(
            mirrored(path, extension)
                .with_context(|| format!("{} line {line}: `{entry}`", manifest.display()))?,
        );
        if let Some(first) = seen.insert(output.clone(), line) {
            bail!(
                "{}: lines {first} and {line} both write {}",
                manifest.display(),
                output.display()
            );
        }
        if shard.owns(position) {
            jobs.push(Job {
                input: base.join(path),
                output,
            });
        }
    }
    Ok(jobs)
}

/// `path` as a relative path with `extension`: root and `.`/`..` components
/// dropped, so the output stays inside the output directory.
fn mirrored(path: &Path, extension: &str) -> Result<PathBuf> {
    let rel: PathBuf = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    if rel.file_name().is_none() {
        bail!("names no file");
    }
    Ok(rel.with_extension(extension))
}

/// Writes `contents` to `path` through a temporary file in the same folder
/// renamed into place, so `path` exists only when complete.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

/// What a batch run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Transcripts written.
    pub done: usize,
    /// Inputs whose transcript already existed.
    pub skipped: usize,
    /// Inputs that failed (named on stderr).
    pub failed: Vec<PathBuf>,
}

/// Runs `jobs` on `workers` threads: `transcribe(input)` returns the
/// transcript text, written atomically to the job's output. Inputs whose
/// output exists are skipped. Progress goes to stderr, one line per input.
pub fn run<F>(jobs: &[Job], workers: usize, transcribe: F) -> Summary
where
    F: Fn(&Path) -> Result<String> + Sync,
{
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    let total = jobs.len();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = jobs.get(i) else { break };
        let tag = format!("[{}/{total}] {}", i + 1, job.input.display());
        if job.output.exists() {
            eprintln!("{tag}: skipped, {} exists", job.output.display());
            summary.lock().expect("summary").skipped += 1;
            continue;
        }
        let t = Instant::now();
        let result =
            transcribe(&job.input).and_then(|text| write_atomically(&job.output, text.as_bytes()));
        let mut s = summary.lock().expect("summary");
        match result {
            Ok(()) => {
                eprintln!(
                    "{tag} -> {} ({:.1} s)",
                    job.output.display(),
                    t.elapsed().as_secs_f64()
                );
                s.done += 1;
            }
            Err(e) => {
                eprintln!("{tag}: error: {e:#}");
                s.failed.push(job.input.clone());
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, total.max(1)) {
            scope.spawn(work);
        }
    });
    summary.into_inner().expect("summary")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_by_position() {
        assert_eq!(parse_shard("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/2", "1/b", "-1/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        let s = Shard { index: 1, count: 3 };
        let owned: Vec<usize> = (0..8).filter(|&p| s.owns(p)).collect();
        assert_eq!(owned, [1, 4, 7]);
    }

    #[test]
    fn plan_mirrors_paths_skips_comments_and_shards() {
        let text = "# calls\n\na.wav\n sub/b.flac \n/abs/c.mp3\n../up/d.ogg\n";
        let m = Path::new("/lists/m.txt");
        let all = plan(m, text, Path::new("/out"), "srt", Shard::ALL).unwrap();
        let pairs: Vec<(&str, &str)> = all
            .iter()
            .map(|j| (j.input.to_str().unwrap(), j.output.to_str().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("/lists/a.wav", "/out/a.srt"),
                ("/lists/sub/b.flac", "/out/sub/b.srt"),
                ("/abs/c.mp3", "/out/abs/c.srt"),
                ("/lists/../up/d.ogg", "/out/up/d.srt"),
            ]
        );
        let half = plan(
            m,
            text,
            Path::new("/out"),
            "srt",
            Shard { index: 1, count: 2 },
        )
        .unwrap();
        assert_eq!(half, [all[1].clone(), all[3].clone()]);
    }

    #[test]
    fn plan_refuses_collisions_and_empty_manifests() {
        let m = Path::new("m.txt");
        let err = plan(m, "x/a.wav\nx/a.flac\n", Path::new("o"), "txt", Shard::ALL).unwrap_err();
        assert!(format!("{err}").contains("lines 1 and 2"), "{err}");
        let err = plan(m, "# nothing\n\n", Path::new("o"), "txt", Shard::ALL).unwrap_err();
        assert!(format!("{err}").contains("no audio files"), "{err}");
        let err = plan(m, "..\n", Path::new("o"), "txt", Shard::ALL).unwrap_err();
        assert!(format!("{err:#}").contains("names no file"), "{err:#}");
    }

    #[test]
    fn run_skips_existing_outputs_and_goes_on_after_failures() {
        let dir = std::env::temp_dir().join(format!("emily-batch-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let job = |name: &str| Job {
            input: PathBuf::from(name),
            output: dir.join(format!("{name}.txt")),
        };
        let jobs = [job("a"), job("bad"), job("c"), job("d")];
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&jobs[2].output, "old").unwrap();
        let s = run(&jobs, 2, |p| {
            if p == Path::new("bad") {
                bail!("not audio")
            }
            Ok(format!("text of {}", p.display()))
        });
        assert_eq!(s.done, 2);
        assert_eq!(s.skipped, 1);
        assert_eq!(s.failed, [PathBuf::from("bad")]);
        assert_eq!(
            std::fs::read_to_string(&jobs[0].output).unwrap(),
            "text of a"
        );
        assert_eq!(std::fs::read_to_string(&jobs[2].output).unwrap(), "old");
        assert!(!jobs[1].output.exists());
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
