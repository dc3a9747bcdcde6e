//! Acceptance of the risk detector on the held-out split of its corpus
//! (`mls/detector/corpus.jsonl`, `split = "test"`: the messages of `mls/detector/heldout_src/`,
//! written by authors who never saw the training data, never trained or tuned on). Prints
//! precision and recall overall and per language and how often the severity and kind agree;
//! requires recall ≥ 0.95 and precision ≥ 0.90 overall and recall ≥ 0.90 in each language.
//! The split is sealed: this test prints counts, never the messages it misses (reading them
//! would turn it into tuning data; the `dev` split is for reading errors). A second test
//! proves the held-out texts are disjoint from the training texts, exactly and as near
//! duplicates.
//!
//! `cargo test -p peerbridge-mls --test detector_heldout -- --nocapture` prints the figures.

use std::collections::{BTreeMap, HashSet};

use peerbridge_mls::detector::{RiskKind, SeverityHint, assess, features};
use serde_json::Value;

struct Row {
    id: String,
    lang: String,
    risk: bool,
    category: String,
    severity: String,
    split: String,
    group: String,
    text: String,
}

fn corpus() -> Vec<Row> {
    include_str!("../detector/corpus.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("corpus line");
            let s = |k: &str| v[k].as_str().expect(k).to_owned();
            Row {
                id: s("id"),
                lang: s("lang"),
                risk: match v["label"].as_str() {
                    Some("risk") => true,
                    Some("none") => false,
                    other => panic!("unknown label {other:?}"),
                },
                category: s("category"),
                severity: s("severity"),
                split: s("split"),
                group: s("group"),
                text: s("text"),
            }
        })
        .collect()
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
    severity_ok: u32,
    kind_ok: u32,
    imminent_false: u32,
}

impl Counts {
    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fp).max(1))
    }
    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fn_).max(1))
    }
}

fn kind_name(k: RiskKind) -> &'static str {
    match k {
        RiskKind::SuicidalIdeation => "suicidal_ideation",
        RiskKind::GoodbyePlanMeans => "goodbye_plan_means",
        RiskKind::MedicationRefusal => "medication_refusal",
        RiskKind::SelfHarm => "self_harm",
    }
}

fn severity_name(s: SeverityHint) -> &'static str {
    match s {
        SeverityHint::Imminent => "imminent",
        SeverityHint::Urgent => "urgent",
        SeverityHint::Concerning => "concerning",
    }
}

#[test]
fn on_the_held_out_split_recall_and_precision_reach_the_bar() {
    let rows = corpus();
    let mut by_lang: BTreeMap<&str, Counts> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.split == "test") {
        let s = assess(&r.text);
        let mut all = by_lang.remove("all").unwrap_or_default();
        let lang = by_lang.entry(&r.lang).or_default();
        for c in [lang, &mut all] {
            match (r.risk, &s) {
                (true, Some(s)) => {
                    c.tp += 1;
                    c.severity_ok += u32::from(severity_name(s.severity_hint) == r.severity);
                    c.kind_ok += u32::from(kind_name(s.kind) == r.category);
                }
                (false, Some(_)) => c.fp += 1,
                (true, None) => c.fn_ += 1,
                (false, None) => c.tn += 1,
            }
            if s.as_ref()
                .is_some_and(|s| s.severity_hint == SeverityHint::Imminent)
                && r.severity != "imminent"
            {
                c.imminent_false += 1;
            }
        }
        by_lang.insert("all", all);
    }
    for (lang, c) in &by_lang {
        println!(
            "{lang}: TP {} FP {} FN {} TN {} precision {:.3} recall {:.3} \
             severity agrees {}/{} kind agrees {}/{} imminent where not {}",
            c.tp,
            c.fp,
            c.fn_,
            c.tn,
            c.precision(),
            c.recall(),
            c.severity_ok,
            c.tp,
            c.kind_ok,
            c.tp,
            c.imminent_false,
        );
    }
    let all = by_lang["all"];
    assert!(
        all.tp + all.fn_ >= 300 && all.fp + all.tn >= 600,
        "the held-out split is too small"
    );
    for lang in ["nb", "nn", "en"] {
        let c = by_lang[lang];
        assert!(
            c.tp + c.fn_ >= 60,
            "too few held-out risk messages in {lang}"
        );
        assert!(c.recall() >= 0.90, "{lang} recall {:.3}", c.recall());
    }
    assert!(all.recall() >= 0.95, "recall {:.3}", all.recall());
    assert!(all.precision() >= 0.90, "precision {:.3}", all.precision());
}

/// Character trigrams of a normalised text padded as `build_corpus.py` pads it.
fn trigrams(s: &str) -> HashSet<String> {
    let chars: Vec<char> = format!("  {s} ").chars().collect();
    chars.windows(3).map(|w| w.iter().collect()).collect()
}

#[test]
fn the_held_out_texts_are_disjoint_from_the_training_texts() {
    let rows = corpus();
    let canon = |t: &str| {
        features::normalise(t)
            .into_iter()
            .filter(|t| t != ".")
            .collect::<Vec<_>>()
            .join(" ")
    };
    let train: Vec<String> = rows
        .iter()
        .filter(|r| r.split == "train")
        .map(|r| canon(&r.text))
        .collect();
    let test: Vec<&Row> = rows.iter().filter(|r| r.split == "test").collect();
    assert!(
        test.iter().all(|r| r.group.starts_with("test-")),
        "every held-out message comes from heldout_src/"
    );
    let exact: HashSet<&String> = train.iter().collect();
    let shared: Vec<&str> = test
        .iter()
        .filter(|r| exact.contains(&canon(&r.text)))
        .map(|r| r.id.as_str())
        .collect();
    assert!(
        shared.is_empty(),
        "held-out texts also in training: {shared:?}"
    );
    // No training text is a near duplicate of a held-out one (character-trigram Jaccard
    // ≥ 0.5, the measure the corpus builder drops them by), through an inverted index.
    // Trigrams get small ids and each training text counts its overlaps in one reused
    // array, so the debug build reads ~40k texts against ~1.8k in seconds.
    let mut ids: std::collections::HashMap<String, usize> = Default::default();
    let mut postings: Vec<Vec<u32>> = Vec::new();
    let test_grams: Vec<HashSet<String>> = test.iter().map(|r| trigrams(&canon(&r.text))).collect();
    for (j, g) in test_grams.iter().enumerate() {
        for t in g {
            let next = ids.len();
            let id = *ids.entry(t.clone()).or_insert(next);
            if id == postings.len() {
                postings.push(Vec::new());
            }
            postings[id].push(j as u32);
        }
    }
    let mut near = Vec::new();
    let mut closest = 0.0f64;
    let mut overlap = vec![0u32; test.len()];
    let mut touched: Vec<u32> = Vec::new();
    for t in &train {
        let g = trigrams(t);
        for gram in &g {
            for &j in ids.get(gram).map(|&id| &postings[id][..]).unwrap_or(&[]) {
                if overlap[j as usize] == 0 {
                    touched.push(j);
                }
                overlap[j as usize] += 1;
            }
        }
        for j in touched.drain(..) {
            let n = std::mem::take(&mut overlap[j as usize]) as usize;
            let j = j as usize;
            let jaccard = n as f64 / (g.len() + test_grams[j].len() - n) as f64;
            closest = closest.max(jaccard);
            if jaccard >= 0.5 {
                near.push((t.clone(), test[j].id.clone()));
            }
        }
    }
    assert!(
        near.is_empty(),
        "near duplicates across the split: {near:?}"
    );
    // The measure sees a near duplicate when there is one: a held-out text against itself
    // with one word changed.
    let probe = canon(&test[0].text);
    let changed = format!("{probe} ok");
    let (a, b) = (trigrams(&probe), trigrams(&changed));
    assert!(a.intersection(&b).count() as f64 / a.union(&b).count() as f64 >= 0.5);
    println!(
        "held out: {} of {} messages; closest training text at Jaccard {closest:.2}",
        test.len(),
        rows.len(),
    );
    assert!(test.len() >= 1200, "held-out split too small");
}
