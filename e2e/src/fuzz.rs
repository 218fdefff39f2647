//! A small mutation fuzzer for parsers of untrusted bytes, run as ordinary tests for a bounded
//! time (so CI runs it on every change without a nightly toolchain or a coverage-guided engine).
//!
//! Written here rather than taken from `cargo fuzz` or `bolero` because those need nightly or an
//! external driver to go beyond a handful of random inputs; what CI needs is many structured
//! mutations of valid inputs (bit flips, byte and token insertions, deletions, duplications,
//! splices of two seeds) within a time budget, with any panic reported with the input that caused
//! it. Set `CAPSTAN_FUZZ_SECONDS` for a longer run and `CAPSTAN_FUZZ_SEED` to replay one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// What a run did, for the test's output and the notes.
#[derive(Debug, Clone)]
pub struct FuzzReport {
    pub target: String,
    pub executions: u64,
    pub seed: u64,
    pub elapsed: Duration,
}

/// Runs `target` on `seeds` and on mutations of them until the time budget is spent. A panic
/// inside `target` fails the calling test with the target name, the RNG seed and the input.
pub fn fuzz(name: &str, seeds: &[&[u8]], tokens: &[&[u8]], target: impl Fn(&[u8])) -> FuzzReport {
    let budget = std::env::var("CAPSTAN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(3));
    let seed = std::env::var("CAPSTAN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let mut executions = 0u64;
    let mut run = |input: &[u8]| {
        executions += 1;
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            panic!(
                "fuzz target {name} panicked (CAPSTAN_FUZZ_SEED={seed}) on {} bytes: {:?}",
                input.len(),
                String::from_utf8_lossy(input)
            );
        }
    };
    for s in seeds {
        run(s);
    }
    while started.elapsed() < budget {
        let base = if seeds.is_empty() {
            &[][..]
        } else {
            seeds[rng.usize(..seeds.len())]
        };
        let mut input = base.to_vec();
        for _ in 0..rng.usize(1..=8) {
            mutate(&mut rng, &mut input, seeds, tokens);
        }
        run(&input);
    }
    let report = FuzzReport {
        target: name.to_string(),
        executions,
        seed,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "fuzz {name}: {} executions in {:.1}s, no panic (CAPSTAN_FUZZ_SEED={seed})",
        report.executions,
        report.elapsed.as_secs_f64()
    );
    report
}

fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, seeds: &[&[u8]], tokens: &[&[u8]]) {
    let len = input.len();
    match rng.u8(0..8) {
        0 if len > 0 => {
            let i = rng.usize(..len);
            input[i] ^= 1 << rng.u8(0..8);
        }
        1 if len > 0 => {
            let i = rng.usize(..len);
            input[i] = rng.u8(..);
        }
        2 => {
            let i = rng.usize(..=len);
            let n = rng.usize(1..=4);
            let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            input.splice(i..i, bytes);
        }
        3 if len > 0 => {
            let a = rng.usize(..len);
            let b = (a + rng.usize(1..=16)).min(len);
            input.drain(a..b);
        }
        4 if len > 0 => {
            let a = rng.usize(..len);
            let b = (a + rng.usize(1..=32)).min(len);
            let chunk = input[a..b].to_vec();
            let at = rng.usize(..=input.len());
            input.splice(at..at, chunk);
        }
        5 if !tokens.is_empty() => {
            let t = tokens[rng.usize(..tokens.len())];
            let at = rng.usize(..=len);
            input.splice(at..at, t.iter().copied());
        }
        6 if !seeds.is_empty() => {
            let other = seeds[rng.usize(..seeds.len())];
            let cut = rng.usize(..=len);
            let from = rng.usize(..=other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        _ => {
            // Interesting numbers: lengths and offsets are where binary parsers break.
            if len >= 4 {
                let i = rng.usize(..len - 3);
                let v: u32 = [0, 1, 0x7f, 0xff, 0x7fff_ffff, 0xffff_ffff, 2048, 65535][rng.usize(..8)];
                input[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}
