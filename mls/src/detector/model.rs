//! The trained heads of the risk detector: integer weights embedded from
//! `mls/detector/weights.bin` (written by `mls/detector/train.py`) and the scores they give.
//! All arithmetic is on integers, so every platform (native, wasm32) gives the same scores.
//!
//! Format, little endian: `PBD1`, bits u8, heads u8, scale u16, entries u32; per head a bias
//! i32 and a threshold i32; then per entry (ascending bucket) the bucket u32 and one i16
//! weight per head. A bucket that is not listed weighs zero in every head.

use std::sync::LazyLock;

const WEIGHTS: &[u8] = include_bytes!("../../detector/weights.bin");

/// The heads, in the file's order.
pub const HEADS: usize = 7;

pub(super) struct Model {
    /// Weights are integers in units of 1/scale.
    pub scale: u16,
    pub biases: [i32; HEADS],
    pub thresholds: [i32; HEADS],
    buckets: Vec<u32>,
    weights: Vec<[i16; HEADS]>,
}

/// The embedded model's size in bytes.
pub const SIZE: usize = WEIGHTS.len();

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .expect("weights.bin is shorter than its header says");
        self.0 = rest;
        *head
    }
}

pub(super) static MODEL: LazyLock<Model> = LazyLock::new(|| {
    let mut r = Reader(WEIGHTS);
    assert_eq!(&r.take::<4>(), b"PBD1", "weights.bin: not a detector model");
    let [bits] = r.take::<1>();
    let [heads] = r.take::<1>();
    assert_eq!(
        u32::from(bits),
        super::features::BITS,
        "weights.bin: feature space"
    );
    assert_eq!(usize::from(heads), HEADS, "weights.bin: number of heads");
    let scale = u16::from_le_bytes(r.take());
    let n = u32::from_le_bytes(r.take()) as usize;
    let mut biases = [0; HEADS];
    let mut thresholds = [0; HEADS];
    for h in 0..HEADS {
        biases[h] = i32::from_le_bytes(r.take());
        thresholds[h] = i32::from_le_bytes(r.take());
    }
    let mut buckets = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for _ in 0..n {
        buckets.push(u32::from_le_bytes(r.take()));
        let mut w = [0; HEADS];
        for x in &mut w {
            *x = i16::from_le_bytes(r.take());
        }
        weights.push(w);
    }
    assert!(r.0.is_empty(), "weights.bin: trailing bytes");
    assert!(buckets.is_sorted(), "weights.bin: buckets out of order");
    Model {
        scale,
        biases,
        thresholds,
        buckets,
        weights,
    }
});

impl Model {
    /// Each head's score: its bias plus the weight of every bucket present.
    pub fn logits(&self, buckets: &[u32]) -> [i32; HEADS] {
        let mut out = self.biases;
        for b in buckets {
            if let Ok(i) = self.buckets.binary_search(b) {
                for (o, w) in out.iter_mut().zip(self.weights[i]) {
                    *o += i32::from(w);
                }
            }
        }
        out
    }
}
