//! The risk detector against a labelled corpus (`tests/fixtures/detector/corpus.tsv`: our
//! own sentences in bokmål, nynorsk and English, including negations, the past, reported
//! speech and everyday idioms). Prints precision and recall per language and overall, lists
//! every miss, and requires recall ≥ 0.95 on risk sentences and precision ≥ 0.90.

use peerbridge_mls::detector::assess;

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
}

impl Counts {
    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fp).max(1))
    }
    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fn_).max(1))
    }
}

#[test]
fn the_detector_finds_risk_and_leaves_everyday_language_alone() {
    let corpus = include_str!("fixtures/detector/corpus.tsv");
    let mut by_lang: std::collections::BTreeMap<&str, Counts> = Default::default();
    let mut all = Counts::default();
    let mut misses = Vec::new();
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.splitn(3, '\t');
        let (label, lang, sentence) = (
            parts.next().expect("label"),
            parts.next().expect("language"),
            parts.next().expect("sentence"),
        );
        let risk = match label {
            "risk" => true,
            "none" => false,
            other => panic!("unknown label {other}"),
        };
        let flagged = assess(sentence).is_some();
        let c = by_lang.entry(lang).or_default();
        for c in [c, &mut all] {
            match (risk, flagged) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        if risk != flagged {
            misses.push(format!("{label}\t{lang}\t{sentence}"));
        }
    }
    for (lang, c) in by_lang.iter().chain(std::iter::once((&"all", &all))) {
        println!(
            "{lang}: TP {} FP {} FN {} TN {} precision {:.3} recall {:.3}",
            c.tp,
            c.fp,
            c.fn_,
            c.tn,
            c.precision(),
            c.recall()
        );
    }
    for m in &misses {
        println!("miss: {m}");
    }
    assert!(
        all.tp + all.fn_ >= 75 && all.fp + all.tn >= 75,
        "the corpus is too small"
    );
    assert!(all.recall() >= 0.95, "recall {:.3}", all.recall());
    assert!(all.precision() >= 0.90, "precision {:.3}", all.precision());
}
