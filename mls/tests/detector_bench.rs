//! The risk detector's cost, for `docs/benchmarks.md`: per-message latency (p50, p99, max)
//! over every corpus message in a release build, the one-time start-up (parsing the
//! embedded tables and weights), and the embedded model's size. Prints figures; asserts
//! nothing about time (a shared machine's timing is not a test).
//!
//! `cargo test --release -p peerbridge-mls --test detector_bench -- --ignored --nocapture`

use std::time::{Duration, Instant};

use peerbridge_mls::detector::{self, assess};

#[test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
fn detector_latency_and_size() {
    let texts: Vec<String> = include_str!("../detector/corpus.jsonl")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("corpus line");
            v["text"].as_str().expect("text").to_owned()
        })
        .collect();
    let start = Instant::now();
    let _ = assess("warm up: parse the embedded lexicon and weights");
    let startup = start.elapsed();
    let long = "Jeg har hatt en lang dag på jobben og tenker mye på alt som skjer. ".repeat(30);
    let mut times: Vec<Duration> = Vec::with_capacity(texts.len() * 3);
    let mut flagged = 0usize;
    for _ in 0..3 {
        for t in &texts {
            let s = Instant::now();
            let r = std::hint::black_box(assess(std::hint::black_box(t)));
            times.push(s.elapsed());
            flagged += usize::from(r.is_some());
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let s = Instant::now();
    let _ = std::hint::black_box(assess(&long));
    let long_time = s.elapsed();
    println!(
        "detector: {} messages x3, p50 {:?}, p99 {:?}, max {:?}; a {}-character message {:?}; \
         start-up {:?}; flagged {}",
        texts.len(),
        pct(0.50),
        pct(0.99),
        times[times.len() - 1],
        long.chars().count(),
        long_time,
        startup,
        flagged / 3,
    );
    println!(
        "model size: weights {} bytes + lexicon {} bytes = {} bytes embedded",
        detector::model_size(),
        detector::lexicon_size(),
        detector::model_size() + detector::lexicon_size()
    );
}
