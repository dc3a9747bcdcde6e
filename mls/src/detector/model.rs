//! The trained heads of the risk detector, embedded from `mls/detector/weights.bin` (written
//! by `mls/detector/train.py`), and the scores they give. The arithmetic is IEEE-754 f64 on
//! f32 constants in a fixed order (additions, multiplications, one division and one square
//! root per block: all correctly rounded, no fused operations), rounded to integers at the
//! end, so every platform (native, wasm32) and the training script give the same scores.
//!
//! Format, little endian: `PBD2`, bits u8, heads u8, scale u16, tf entries u16, entries u32;
//! per head a bias i32 and a threshold i32; the sublinear tf table (f32 per count from 1);
//! then per entry (ascending bucket) the bucket u32, its idf f32 and one i16 weight per head.
//! A bucket that is not listed is not part of the model (in no norm, no score).

use std::sync::LazyLock;

const WEIGHTS: &[u8] = include_bytes!("../../detector/weights.bin");

/// The heads, in the file's order.
pub const HEADS: usize = 7;

pub(super) struct Model {
    /// Weights are integers in units of 1/scale.
    pub scale: u16,
    pub biases: [i32; HEADS],
    pub thresholds: [i32; HEADS],
    /// `tf[c - 1]`: the weight of a gram seen `c` times (the last for more).
    tf: Vec<f64>,
    buckets: Vec<u32>,
    idf: Vec<f64>,
    weights: Vec<[f64; HEADS]>,
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
    assert_eq!(&r.take::<4>(), b"PBD2", "weights.bin: not a detector model");
    let [bits] = r.take::<1>();
    let [heads] = r.take::<1>();
    assert_eq!(
        u32::from(bits),
        super::features::BITS,
        "weights.bin: feature space"
    );
    assert_eq!(usize::from(heads), HEADS, "weights.bin: number of heads");
    let scale = u16::from_le_bytes(r.take());
    let tf_len = usize::from(u16::from_le_bytes(r.take()));
    let n = u32::from_le_bytes(r.take()) as usize;
    let mut biases = [0; HEADS];
    let mut thresholds = [0; HEADS];
    for h in 0..HEADS {
        biases[h] = i32::from_le_bytes(r.take());
        thresholds[h] = i32::from_le_bytes(r.take());
    }
    assert!(tf_len > 0, "weights.bin: empty tf table");
    let tf = (0..tf_len)
        .map(|_| f64::from(f32::from_le_bytes(r.take())))
        .collect();
    let mut buckets = Vec::with_capacity(n);
    let mut idf = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for _ in 0..n {
        buckets.push(u32::from_le_bytes(r.take()));
        idf.push(f64::from(f32::from_le_bytes(r.take())));
        let mut w = [0.0; HEADS];
        for x in &mut w {
            *x = f64::from(i16::from_le_bytes(r.take()));
        }
        weights.push(w);
    }
    assert!(r.0.is_empty(), "weights.bin: trailing bytes");
    assert!(buckets.is_sorted(), "weights.bin: buckets out of order");
    Model {
        scale,
        biases,
        thresholds,
        tf,
        buckets,
        idf,
        weights,
    }
});

/// Rounds half away from zero, as the training script does.
fn round(x: f64) -> i32 {
    // Scores are bounded by the weights' range times a unit vector's: far inside i32.
    x.round() as i32
}

impl Model {
    /// Each head's score: its bias plus, per block, the dot product of its weights with the
    /// block's L2-normalised tf-idf vector.
    pub fn logits(&self, counts: &[(u32, u32)]) -> [i32; HEADS] {
        let half = 1u32 << super::features::BITS;
        let mut total = [0.0f64; HEADS];
        for block in 0..2u32 {
            let mut dots = [0.0f64; HEADS];
            let mut sumsq = 0.0f64;
            for &(b, c) in counts.iter().filter(|(b, _)| (*b >= half) == (block == 1)) {
                let Ok(i) = self.buckets.binary_search(&b) else {
                    continue;
                };
                let tf = self.tf[(c as usize).clamp(1, self.tf.len()) - 1];
                let v = tf * self.idf[i];
                sumsq += v * v;
                for (d, w) in dots.iter_mut().zip(self.weights[i]) {
                    *d += v * w;
                }
            }
            if sumsq > 0.0 {
                let norm = sumsq.sqrt();
                for (t, d) in total.iter_mut().zip(dots) {
                    *t += d / norm;
                }
            }
        }
        let mut out = self.biases;
        for (o, t) in out.iter_mut().zip(total) {
            *o += round(t);
        }
        out
    }
}
