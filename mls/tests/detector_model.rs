//! The Rust inference against what the training pipeline computed (`mls/detector/train.py`):
//! the same tokens, feature buckets, integer scores and decisions for the probe strings in
//! `fixtures.json`, and the same scores for every held-out message in
//! `heldout_scores.jsonl` (the file the browser build is compared with). Any drift between
//! `features.py` and `src/detector/features.rs`, or a stale weights file, fails here.

use peerbridge_mls::detector::{self, RiskCategory, RiskKind, SeverityHint, features};
use serde_json::Value;

fn decision(v: &Value) -> Option<(RiskCategory, RiskKind, SeverityHint)> {
    if v.is_null() {
        return None;
    }
    let kind = match v["category"].as_str() {
        Some("suicidal_ideation") => RiskKind::SuicidalIdeation,
        Some("goodbye_plan_means") => RiskKind::GoodbyePlanMeans,
        Some("medication_refusal") => RiskKind::MedicationRefusal,
        Some("self_harm") => RiskKind::SelfHarm,
        other => panic!("unknown category {other:?}"),
    };
    let category = if kind == RiskKind::SelfHarm {
        RiskCategory::SelfHarm
    } else {
        RiskCategory::SuicideRisk
    };
    let severity = match v["severity"].as_str() {
        Some("imminent") => SeverityHint::Imminent,
        Some("urgent") => SeverityHint::Urgent,
        Some("concerning") => SeverityHint::Concerning,
        other => panic!("unknown severity {other:?}"),
    };
    Some((category, kind, severity))
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_i64().expect("an integer"))
        .collect()
}

#[test]
fn tokens_features_scores_and_decisions_match_the_training_pipeline() {
    let fixtures: Vec<Value> =
        serde_json::from_str(include_str!("../detector/fixtures.json")).expect("fixtures.json");
    assert!(fixtures.len() >= 40, "too few fixtures");
    let mut flagged = 0;
    for f in &fixtures {
        let text = f["text"].as_str().expect("text");
        let tokens: Vec<String> = f["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t.as_str().expect("token").to_owned())
            .collect();
        assert_eq!(features::normalise(text), tokens, "tokens of {text:?}");
        let ours = features::features(text);
        let counts: Vec<i64> = ours
            .counts
            .iter()
            .flat_map(|&(b, c)| [i64::from(b), i64::from(c)])
            .collect();
        let expected: Vec<i64> = f["features"]
            .as_array()
            .expect("features")
            .iter()
            .flat_map(ints)
            .collect();
        assert_eq!(counts, expected, "features of {text:?}");
        let rules: Vec<&str> = f["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| r.as_str().expect("rule"))
            .collect();
        assert_eq!(ours.rules, rules, "rules of {text:?}");
        let scores: Vec<i64> = detector::scores(text)
            .to_array()
            .iter()
            .map(|&s| i64::from(s))
            .collect();
        assert_eq!(scores, ints(&f["logits"]), "scores of {text:?}");
        let got = detector::assess(text).map(|s| (s.category, s.kind, s.severity_hint));
        assert_eq!(got, decision(&f["decision"]), "decision on {text:?}");
        flagged += usize::from(got.is_some());
    }
    assert!(
        flagged > 0 && flagged < fixtures.len(),
        "fixtures on both sides"
    );
}

#[test]
fn every_held_out_score_matches_the_exported_one() {
    let corpus: std::collections::HashMap<String, String> =
        include_str!("../detector/corpus.jsonl")
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("corpus line");
                (
                    v["id"].as_str().expect("id").to_owned(),
                    v["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect();
    let mut n = 0;
    for line in include_str!("../detector/heldout_scores.jsonl").lines() {
        let v: Value = serde_json::from_str(line).expect("score line");
        let id = v["id"].as_str().expect("id");
        let text = &corpus[id];
        let scores: Vec<i64> = detector::scores(text)
            .to_array()
            .iter()
            .map(|&s| i64::from(s))
            .collect();
        assert_eq!(scores, ints(&v["logits"]), "scores of {id} {text:?}");
        let got = detector::assess(text).map(|s| (s.category, s.kind, s.severity_hint));
        assert_eq!(got, decision(&v["decision"]), "decision on {id} {text:?}");
        n += 1;
    }
    assert!(n >= 600, "only {n} held-out scores");
}

#[test]
fn imminent_is_suggested_only_with_a_plan_means_or_time_and_never_for_a_pill_routine() {
    let mut imminent = 0;
    let mut routine = 0;
    for line in include_str!("../detector/corpus.jsonl").lines() {
        let v: Value = serde_json::from_str(line).expect("corpus line");
        let text = v["text"].as_str().expect("text");
        let Some(s) = detector::assess(text) else {
            continue;
        };
        if s.severity_hint == SeverityHint::Imminent {
            imminent += 1;
            assert!(
                features::features(text).gate,
                "imminent without a plan, means or time: {text:?}"
            );
            assert!(
                v["kind"] != "med_routine",
                "an imminent alarm on a medication routine: {text:?}"
            );
        }
        routine += usize::from(v["kind"] == "med_routine");
    }
    println!(
        "{imminent} imminent suggestions; {routine} medication-routine messages flagged (not imminent)"
    );
    assert!(imminent > 0, "no imminent suggestion at all");
}
