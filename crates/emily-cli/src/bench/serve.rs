//! `emily bench serve`: `emily serve` (a child process on a loopback port)
//! under C = 1, 2, 4, 8 concurrent clients each sending the JFK clip in a
//! closed loop: requests/s, audio seconds/s, p50/p95/p99 latency and the
//! ratio to one client, next to the same transcription in process (with the
//! server's decoding options), after the batching rows of [`super::serve_batch`];
//! then chat completions with SmolLM2 at C = 1 and 4 ([`super::serve_llm`]);
//! then 10× overload: no crash, RSS bounded, every accepted request answered
//! with the right text, the rest 429.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use emily::Kernels;
use emily_models::whisper::{ComputeType, TranscribeOptions, Whisper};
use tokio::task::JoinSet;

use super::serve_batch::BatchRows;

/// Requests each client sends per concurrency level.
const PER_CLIENT: usize = 3;
/// Concurrency levels (JFK).
const LEVELS: [usize; 4] = [1, 2, 4, 8];
/// Concurrency levels of the speech-dense input.
const DENSE_LEVELS: [usize; 2] = [1, 4];
/// The overload run: queue size, clients per queue slot, default seconds.
const OVERLOAD_QUEUE: usize = 4;
const OVERLOAD_FACTOR: usize = 10;
const OVERLOAD_SECONDS: u64 = 30;

/// The servers' `--workers` (`EMILY_BENCH_SERVE_WORKERS`, default 1: the
/// server's own default).
pub(super) fn workers() -> usize {
    std::env::var("EMILY_BENCH_SERVE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `EMILY_BENCH_SERVE_TRACE=1`: the server's per-request trace (`emily -v
/// serve`) on this process's stderr, beside the in-process timings of the
/// paired measurement.
pub(super) fn trace() -> bool {
    std::env::var("EMILY_BENCH_SERVE_TRACE").is_ok_and(|v| v == "1")
}

/// A server child process.
pub(super) struct ServerChild {
    child: Child,
    pub(super) url: String,
    /// Kept open: the server prints a last line when it stops.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl ServerChild {
    /// Starts `emily serve --port 0` (plus `extra` flags) and waits until
    /// `/health` is 200.
    pub(super) fn start(
        model: &Path,
        queue: usize,
        extra: &[&std::ffi::OsStr],
        rt: &tokio::runtime::Runtime,
    ) -> Result<ServerChild> {
        let exe = std::env::current_exe().context("locating the emily binary")?;
        let trace = trace();
        let mut child = Command::new(exe)
            .args(trace.then_some("-v"))
            .arg("serve")
            .arg("--whisper")
            .arg(model)
            .args(["--port", "0", "--queue", &queue.to_string()])
            .args(["--workers", &workers().to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(if trace {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .context("starting emily serve")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        stdout
            .read_line(&mut line)
            .context("reading the server's address")?;
        let Some(url) = line.trim().strip_prefix("emily serve: listening on ") else {
            let _ = child.kill();
            bail!("emily serve did not start: {line:?}");
        };
        let server = ServerChild {
            child,
            url: url.to_string(),
            _stdout: stdout,
        };
        let health = format!("{}/health", server.url);
        let t0 = Instant::now();
        loop {
            let ok = rt.block_on(async {
                reqwest::get(&health)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if ok {
                return Ok(server);
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "the server never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A `/proc/PID/status` field in MB (`VmRSS`, `VmHWM`).
    pub(super) fn memory_mb(&self, field: &str) -> f64 {
        let path = format!("/proc/{}/status", self.child.id());
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// SIGTERM (graceful drain), then waits; true if it exited cleanly.
    pub(super) fn stop(mut self) -> Result<bool> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?.success())
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One request's outcome.
pub(super) struct Outcome {
    pub(super) status: u16,
    pub(super) seconds: f64,
    pub(super) text: Option<String>,
}

impl Outcome {
    /// An error unless the request succeeded with `expected` as its text.
    pub(super) fn check(&self, expected: &str) -> Result<()> {
        ensure!(self.status == 200, "status {}", self.status);
        ensure!(
            self.text.as_deref() == Some(expected),
            "wrong text: {:?}",
            self.text
        );
        Ok(())
    }
}

/// Form fields a request adds to `file` and `model`.
pub(super) type Fields = &'static [(&'static str, &'static str)];

/// Posts the clip to the transcription route.
pub(super) async fn transcribe(
    client: &reqwest::Client,
    url: &str,
    wav: &[u8],
    fields: Fields,
) -> Result<Outcome> {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav.to_vec()).file_name("jfk.wav"),
        )
        .text("model", "whisper-1");
    for (k, v) in fields {
        form = form.text(*k, *v);
    }
    let t0 = Instant::now();
    let r = client
        .post(format!("{url}/v1/audio/transcriptions"))
        .multipart(form)
        .send()
        .await?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await?;
    Ok(Outcome {
        status,
        seconds: t0.elapsed().as_secs_f64(),
        text: body["text"].as_str().map(str::to_string),
    })
}

/// The `q` quantile of sorted `v`.
pub(super) fn quantile(v: &[f64], q: f64) -> f64 {
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// `clients` clients, each sending `per_client` requests back to back;
/// returns the latencies (sorted) and the wall time.
async fn closed_loop(
    url: &str,
    wav: Arc<Vec<u8>>,
    fields: Fields,
    clients: usize,
    per_client: usize,
    expected: &str,
) -> Result<(Vec<f64>, f64)> {
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let (client, url, wav) = (client.clone(), url.to_string(), wav.clone());
        set.spawn(async move {
            let mut out = Vec::new();
            for _ in 0..per_client {
                out.push(transcribe(&client, &url, &wav, fields).await?);
            }
            anyhow::Ok(out)
        });
    }
    let mut latencies = Vec::new();
    while let Some(r) = set.join_next().await {
        for o in r?? {
            o.check(expected)?;
            latencies.push(o.seconds);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, wall))
}

/// An input the server is driven with: its WAV bytes, what the model says
/// for it in process, and the work it takes.
pub(super) struct Clip {
    pub(super) label: &'static str,
    pub(super) wav: Arc<Vec<u8>>,
    /// Form fields of its requests (and the decoding options they choose).
    pub(super) fields: Fields,
    seconds: f64,
    /// Text in process with the server's options (what every answer must say).
    pub(super) text: String,
    /// Median in-process milliseconds (the server's options).
    in_process_ms: f64,
    /// Windows and decoder steps of one transcription.
    windows: usize,
    steps: usize,
    /// The samples and the server's decoding options for them, for the
    /// paired C=1 measurement ([`super::serve_paired`]).
    pub(super) samples: Vec<f32>,
    pub(super) opts: TranscribeOptions,
}

impl Clip {
    /// `samples` (16 kHz mono, also encoded as `wav`) transcribed in
    /// process: median of 5 after a warm-up.
    fn measure(
        w: &Whisper,
        label: &'static str,
        (wav, fields): (Vec<u8>, Fields),
        samples: &[f32],
    ) -> Result<Clip> {
        // The server's options for these fields: greedy, with the
        // transcriber's fallback for windows that fail its checks unless
        // `temperature_inc` is 0.
        let inc = fields
            .iter()
            .find(|(k, _)| *k == "temperature_inc")
            .map_or(Ok(0.2), |(_, v)| v.parse::<f32>())?;
        let opts = emily_serve::api::audio::decoding_options(0.0, inc);
        let t = w.transcribe(samples, &opts)?;
        let mut ms: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                w.transcribe(samples, &opts)
                    .map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        ms.sort_by(f64::total_cmp);
        let seconds = samples.len() as f64 / 16_000.0;
        Ok(Clip {
            label,
            wav: Arc::new(wav),
            fields,
            seconds,
            text: t.text.trim().to_string(),
            in_process_ms: ms[ms.len() / 2],
            windows: (seconds / 30.0).ceil() as usize,
            steps: t.timings.decoder_steps,
            samples: samples.to_vec(),
            opts,
        })
    }
}

/// Seconds of the speech-dense input.
const DENSE_SECONDS: usize = 30;

/// A speech-dense input: JFK's speech repeated to fill one 30 s window (JFK
/// alone leaves most of its window silent, so its request is mostly
/// encoder), as 16-bit WAV bytes and samples.
fn dense_input(jfk: &[f32]) -> Result<(Vec<u8>, Vec<f32>)> {
    let samples: Vec<f32> = jfk
        .iter()
        .copied()
        .cycle()
        .take(DENSE_SECONDS * 16_000)
        .collect();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec)?;
    for &x in &samples {
        writer.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
    }
    writer.finalize()?;
    let wav = bytes.into_inner();
    // What the server decodes: the WAV's samples, rounded to 16 bits.
    let samples = emily_models::audio::decode_bytes(wav.clone(), "dense.wav")
        .map(|d| d.samples)
        .context("decoding the speech-dense WAV")?;
    Ok((wav, samples))
}

/// The inputs, measured in process with the server's model and compute
/// type, and the batching rows on JFK.
fn in_process(model: &Path, audio: &Path) -> Result<(Whisper, Vec<Clip>, BatchRows)> {
    // The server's default compute type (`auto`, as `emily transcribe`).
    let w = Whisper::load_with(model, Kernels::Fused, ComputeType::Auto)?;
    let jfk = emily_models::audio::load_audio(audio)?;
    let wav = std::fs::read(audio).with_context(|| audio.display().to_string())?;
    let (dense_wav, dense) = dense_input(&jfk)?;
    let clips = vec![
        Clip::measure(&w, "JFK (11 s)", (wav, &[]), &jfk)?,
        // Its text repeats itself (too repetitive for the fallback checks):
        // `temperature_inc` 0 keeps it greedy, so it measures batching.
        Clip::measure(
            &w,
            "speech-dense 30 s (JFK repeated, temperature_inc=0; not the JFK target's input)",
            (dense_wav, &[("temperature_inc", "0")]),
            &dense,
        )?,
    ];
    let rows = super::serve_batch::run(&w, &jfk)?;
    Ok((w, clips, rows))
}

/// The closed-loop table of `clip` at concurrency `levels`.
fn levels_table(
    rt: &tokio::runtime::Runtime,
    url: &str,
    clip: &Clip,
    levels: &[usize],
    rows: &BatchRows,
) -> Result<()> {
    let cores = emily_kernels::parallel::num_threads() as f64;
    println!(
        "{}: in process (server options), median {:.0} ms; {} window(s), {} decoder steps; \
         Amdahl bound at C=4 from the batching rows (encoder {:.0} % of a request alone; \
         it and the rest besides the join and steps do not batch): {:.2}x; with the encoder also overlapped with other requests' \
         steps ({cores} cores never idle, batched CPU time): {:.2}x",
        clip.label,
        clip.in_process_ms,
        clip.windows,
        clip.steps,
        100.0 * rows.encoder_share(clip.windows, clip.steps, clip.in_process_ms),
        rows.amdahl_bound(clip.windows, clip.steps, clip.in_process_ms),
        rows.overlap_bound(clip.windows, clip.steps, cores, clip.in_process_ms)
    );
    println!("(each level after one untimed round of its C requests)");
    println!(
        "{:>3} {:>5} {:>8} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "C", "reqs", "req/s", "audio s/s", "p50 ms", "p95 ms", "p99 ms", "vs C=1", "p99/in-proc"
    );
    let mut base = None;
    for &c in levels {
        // One untimed round per level first: the first time the server
        // holds `c` requests at once it grows its batch's buffers (the first
        // 4-row round of JFK took ~620 ms against ~330 after), which is
        // start-up, not the rate the level sustains.
        rt.block_on(closed_loop(
            url,
            clip.wav.clone(),
            clip.fields,
            c,
            1,
            &clip.text,
        ))?;
        let (lat, wall) = rt.block_on(closed_loop(
            url,
            clip.wav.clone(),
            clip.fields,
            c,
            PER_CLIENT,
            &clip.text,
        ))?;
        let rps = lat.len() as f64 / wall;
        let base_rps = *base.get_or_insert(rps);
        let p99 = quantile(&lat, 0.99) * 1e3;
        println!(
            "{c:>3} {:>5} {rps:>8.2} {:>9.1} {:>8.0} {:>8.0} {p99:>8.0} {:>9.2}x {:>10.2}",
            lat.len(),
            rps * clip.seconds,
            quantile(&lat, 0.5) * 1e3,
            quantile(&lat, 0.95) * 1e3,
            rps / base_rps,
            p99 / clip.in_process_ms
        );
    }
    Ok(())
}

/// Runs the benchmark on the default model and `samples/jfk.wav`.
pub fn run() -> Result<()> {
    let model: PathBuf = crate::default_model_dir();
    let audio = Path::new("samples/jfk.wav");
    let (w, clips, rows) = in_process(&model, audio)?;
    // `EMILY_BENCH_SERVE_ROWS_ONLY=1`: the in-process rows only (no server).
    if std::env::var("EMILY_BENCH_SERVE_ROWS_ONLY").is_ok_and(|v| v == "1") {
        return Ok(());
    }
    println!(
        "serve: {}, compute type {} (the server's default), {} worker(s)",
        model.display(),
        ComputeType::Auto.resolve().name(),
        workers()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = ServerChild::start(&model, 64, &[], &rt)?;
    levels_table(&rt, &server.url, &clips[0], &LEVELS, &rows)?;
    super::serve_paired::run(&rt, &server.url, &w, &clips[0])?;
    levels_table(&rt, &server.url, &clips[1], &DENSE_LEVELS, &rows)?;
    println!("server peak RSS {:.0} MB", server.memory_mb("VmHWM:"));
    ensure!(server.stop()?, "the server did not exit cleanly on SIGTERM");
    super::serve_llm::run(&model, &rt)?;
    let jfk = &clips[0];
    overload(&model, &rt, jfk.wav.clone(), &jfk.text)
}

/// 10× more clients than the queue holds for `EMILY_BENCH_SERVE_OVERLOAD_S`
/// seconds (default 30), each retrying 100 ms after a 429.
fn overload(
    model: &Path,
    rt: &tokio::runtime::Runtime,
    wav: Arc<Vec<u8>>,
    expected: &str,
) -> Result<()> {
    let seconds = std::env::var("EMILY_BENCH_SERVE_OVERLOAD_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(OVERLOAD_SECONDS);
    let clients = OVERLOAD_QUEUE * OVERLOAD_FACTOR;
    let server = ServerChild::start(model, OVERLOAD_QUEUE, &[], rt)?;
    let start_rss = server.memory_mb("VmRSS:");
    let until = Instant::now() + Duration::from_secs(seconds);
    let (ok, busy, other, wrong, max_rss) = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut set = JoinSet::new();
        for _ in 0..clients {
            let (client, url, wav) = (client.clone(), server.url.clone(), wav.clone());
            set.spawn(async move {
                let mut out = Vec::new();
                while Instant::now() < until {
                    match transcribe(&client, &url, &wav, &[]).await {
                        Ok(o) => {
                            let busy = o.status == 429;
                            out.push((o.status, o.text));
                            if busy {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                        Err(e) => out.push((0, Some(e.to_string()))),
                    }
                }
                out
            });
        }
        let mut max_rss: f64 = start_rss;
        let (mut ok, mut busy, mut other, mut wrong) = (0, 0, 0, 0);
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                r = set.join_next() => match r {
                    None => break,
                    Some(r) => for (status, text) in r.unwrap_or_default() {
                        match status {
                            200 if text.as_deref() == Some(expected) => ok += 1,
                            200 => wrong += 1,
                            429 => busy += 1,
                            _ => other += 1,
                        }
                    },
                },
                _ = ticker.tick() => max_rss = max_rss.max(server.memory_mb("VmRSS:")),
            }
        }
        (ok, busy, other, wrong, max_rss)
    });
    let alive = rt.block_on(async {
        reqwest::get(format!("{}/health", server.url))
            .await
            .is_ok_and(|r| r.status().is_success())
    });
    println!(
        "overload: {clients} clients, queue {OVERLOAD_QUEUE}, {seconds} s: {ok} answered with the right text, \
         {busy} x 429, {wrong} wrong text, {other} other; RSS {start_rss:.0} MB at start, max {max_rss:.0} MB; \
         healthy after: {alive}"
    );
    let clean = server.stop()?;
    ensure!(
        alive && clean && wrong == 0 && other == 0 && ok > 0,
        "overload failed (healthy {alive}, clean exit {clean}, wrong {wrong}, other {other})"
    );
    Ok(())
}
