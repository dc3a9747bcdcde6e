//! The on-device risk detector: reads decrypted text on the device — a received message (to
//! suggest a flag to the peer) or the person's own draft (to offer the crisis resources) —
//! never on the server. It only *suggests*; a human decides, and nothing is sent or flagged
//! by it.
//!
//! A learned model, trained by the reproducible pipeline in `mls/detector/` (corpus,
//! `train.py`, model card) and embedded here, so it runs the same natively and in the wasm
//! build with no files, threads or network:
//! 1. [`features`]: chat normalisation (ASCII spellings of æ/ø/å, repeated letters, dialect,
//!    nynorsk and typo forms, emoji), then hashed word uni- and bigrams and character 2- to
//!    5-grams with their counts; the concept and rule lexicons (matched across inserted
//!    words and typos) decide only the *imminent* gate.
//! 2. Seven linear heads on the tf-idf vector (per block L2-normalised): risk vs none;
//!    one-vs-rest per kind of risk (suicidal ideation, goodbye/plan/means, stopping
//!    medication to let the virus win, self-harm); imminent; urgent vs concerning. Integer
//!    scores out of a fixed sequence of IEEE operations, the same on every platform.
//! 3. The decision: flagged when the risk score reaches the threshold chosen on the dev
//!    split; the kind is the highest kind head; *imminent* only when the imminent
//!    head says so **and** a clause that names a risk also names a plan, means or time (a
//!    rule gate: no imminent alarm from a pill routine); otherwise urgent or concerning by
//!    the urgent head.

pub mod features;
mod model;

use model::{HEADS, MODEL};

/// Read in windows of this many characters (overlapping by [`OVERLAP`]): a message longer
/// than the corpus ever is costs linear time, and the most alarming window speaks for it.
const WINDOW: usize = 1000;
const OVERLAP: usize = 200;
/// A message of more sentences than this is also read as every run of this many
/// consecutive sentences: the model's tf-idf vector is normalised over what it reads, so one
/// risky sentence in a long message would otherwise be diluted by the rest.
const SPAN: usize = 3;
/// Characters that end a sentence (a run of them ends one sentence).
const TERMINATORS: [char; 4] = ['.', '!', '?', '\n'];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskCategory {
    SuicideRisk,
    SelfHarm,
}

/// Most to least urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeverityHint {
    Imminent,
    Urgent,
    Concerning,
}

/// The kind of risk the text reads as (finer than [`RiskCategory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskKind {
    SuicidalIdeation,
    GoodbyePlanMeans,
    /// Stopping HIV medication to let the virus win.
    MedicationRefusal,
    SelfHarm,
}

/// The raw integer score of each head (in 1/scale units of a logit): identical on every
/// platform, so the wasm build can be checked against the native one
/// (`mls/detector/heldout_scores.jsonl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scores {
    pub risk: i32,
    pub ideation: i32,
    pub plan: i32,
    pub meds: i32,
    pub self_harm: i32,
    pub imminent: i32,
    pub urgent: i32,
}

impl Scores {
    /// In the order of the weights file and the fixtures.
    pub fn to_array(self) -> [i32; HEADS] {
        [
            self.risk,
            self.ideation,
            self.plan,
            self.meds,
            self.self_harm,
            self.imminent,
            self.urgent,
        ]
    }

    fn from_array(a: [i32; HEADS]) -> Self {
        let [risk, ideation, plan, meds, self_harm, imminent, urgent] = a;
        Scores {
            risk,
            ideation,
            plan,
            meds,
            self_harm,
            imminent,
            urgent,
        }
    }
}

/// What the detector suggests: flag with this category and severity. Only a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub category: RiskCategory,
    pub severity_hint: SeverityHint,
    pub kind: RiskKind,
    /// 0–1: 1.0 imminent, 0.8 urgent, 0.5 concerning.
    pub score: f32,
    pub scores: Scores,
    /// The rule lexicons the text matched (e.g. "means", "time"), for the person reviewing.
    pub rules: Vec<&'static str>,
}

/// The heads' scores for `text` (the first [`WINDOW`] characters' window with the highest
/// risk score when the text is longer). A pure function of the text.
pub fn scores(text: &str) -> Scores {
    windows(text)
        .into_iter()
        .map(|w| score_window(w).0)
        .max_by_key(|s| s.risk)
        .unwrap_or_default()
}

fn score_window(text: &str) -> (Scores, Vec<String>) {
    let tokens = features::normalise(text);
    let counts = features::ngram_counts(&tokens);
    (Scores::from_array(MODEL.logits(&counts)), tokens)
}

/// What `text` is read as, in order: itself when it is at most [`WINDOW`] characters long;
/// then, when it has more than [`SPAN`] sentences, the runs of [`SPAN`] consecutive sentences
/// starting at every other sentence (those no longer than [`WINDOW`] characters) and each
/// sentence alone. A longer text of at most [`SPAN`] sentences, and a sentence longer than
/// [`WINDOW`], is read as overlapping slices of [`WINDOW`] characters at char boundaries.
/// `mls/detector/train.py` reads it the same way.
fn windows(text: &str) -> Vec<&str> {
    let sentences = sentence_ends(text);
    let mut out: Vec<&str> = Vec::new();
    if sentences.len() <= SPAN {
        slices(text, &mut out);
        return out;
    }
    if text.chars().count() <= WINDOW {
        out.push(text);
    }
    let mut begin = vec![0];
    begin.extend(sentences.iter().copied());
    // Runs start every other sentence: each sentence, and each pair of neighbours, is still
    // read whole in one of them, at half the cost.
    for k in (0..=sentences.len() - SPAN).step_by(2) {
        let span = &text[begin[k]..sentences[k + SPAN - 1]];
        if span.chars().count() <= WINDOW {
            out.push(span);
        }
    }
    // And each sentence alone: one risky sentence between ordinary ones is not outweighed by
    // its neighbours' words.
    for k in 0..sentences.len() {
        slices(&text[begin[k]..sentences[k]], &mut out);
    }
    out
}

/// `text` itself when at most [`WINDOW`] characters long, else its overlapping slices.
fn slices<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let n = starts.len();
    let step = WINDOW - OVERLAP;
    let count = if n <= WINDOW {
        1
    } else {
        (n - OVERLAP).div_ceil(step)
    };
    out.extend((0..count).map(|k| {
        let from = k * step;
        let to = (from + WINDOW).min(n);
        let a = starts.get(from).copied().unwrap_or(text.len());
        let b = starts.get(to).copied().unwrap_or(text.len());
        &text[a..b]
    }));
}

/// Byte offsets just past each sentence: after a run of [`TERMINATORS`], and the end of the
/// text when it does not end with one.
fn sentence_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_terminator = chars.peek().is_some_and(|(_, d)| TERMINATORS.contains(d));
        if TERMINATORS.contains(&c) && !next_is_terminator {
            ends.push(i + c.len_utf8());
        }
    }
    if ends.last() != Some(&text.len()) && !text.is_empty() {
        ends.push(text.len());
    }
    ends
}

/// Suggests a flag for `text`, or `None`. Never panics; long input is read in full (in
/// windows).
pub fn assess(text: &str) -> Option<Suggestion> {
    windows(text)
        .into_iter()
        .filter_map(assess_window)
        .min_by_key(|s| (s.severity_hint, std::cmp::Reverse(s.scores.risk)))
}

fn assess_window(text: &str) -> Option<Suggestion> {
    let (s, tokens) = score_window(text);
    let t = MODEL.thresholds;
    if s.risk < t[0] {
        return None;
    }
    let (gate, rules) = features::gate_and_rules(&tokens);
    // The highest kind head; the first on ties.
    let kinds = [
        (s.ideation, RiskKind::SuicidalIdeation),
        (s.plan, RiskKind::GoodbyePlanMeans),
        (s.meds, RiskKind::MedicationRefusal),
        (s.self_harm, RiskKind::SelfHarm),
    ];
    let mut kind = kinds[0];
    for k in &kinds[1..] {
        if k.0 > kind.0 {
            kind = *k;
        }
    }
    let kind = kind.1;
    let severity = if s.imminent >= t[5] && gate {
        SeverityHint::Imminent
    } else if s.urgent >= t[6] {
        SeverityHint::Urgent
    } else {
        SeverityHint::Concerning
    };
    Some(Suggestion {
        category: match kind {
            RiskKind::SelfHarm => RiskCategory::SelfHarm,
            _ => RiskCategory::SuicideRisk,
        },
        severity_hint: severity,
        kind,
        score: match severity {
            SeverityHint::Imminent => 1.0,
            SeverityHint::Urgent => 0.8,
            SeverityHint::Concerning => 0.5,
        },
        scores: s,
        rules,
    })
}

/// The risk head's threshold (a text is flagged when `scores(text).risk` reaches it).
pub fn risk_threshold() -> i32 {
    MODEL.thresholds[0]
}

/// The embedded model's size in bytes (weights; the lexicon adds [`lexicon_size`]).
pub fn model_size() -> usize {
    model::SIZE
}

/// The embedded lexicon's size in bytes.
pub fn lexicon_size() -> usize {
    features::LEXICON_SIZE
}

/// The weights' unit: a score of `scale()` is a logit of 1.
pub fn scale() -> u16 {
    MODEL.scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_input_panics() {
        for t in [
            "",
            " ",
            "...",
            "ÆØÅæøå",
            "🙂🙃",
            "\u{0}\u{202e}abc",
            "a'b’c`d",
            "?!?!",
            "men but men",
            &"dø ".repeat(3_000),
            &"å".repeat(2_500),
        ] {
            let _ = assess(t);
        }
    }

    #[test]
    fn a_long_message_is_read_to_its_end() {
        let filler = "Vi snakket om været og jobben og ferien. ".repeat(60);
        let risky = format!(
            "{filler}Jeg vil ikke leve lenger. Jeg har bestemt meg for å ta livet mitt i kveld."
        );
        assert!(risky.chars().count() > 2 * WINDOW);
        assert!(assess(&filler).is_none());
        assert!(assess(&risky).is_some());
        // And inside a long message of ordinary sentences, not only at its end.
        let buried = format!("{filler}Jeg vil ikke leve lenger. {filler}");
        assert!(assess(&buried).is_some());
    }

    #[test]
    fn windows_cover_the_text() {
        let text: String = "abcdefghij".repeat(250);
        let ws: Vec<&str> = windows(&text);
        assert!(ws.len() > 1);
        assert!(text.starts_with(ws[0]) && text.ends_with(ws[ws.len() - 1]));
        assert_eq!(windows("short"), ["short"]);
        // Sentences: a message of five is also read as the runs of three from the first
        // and the third, and as each sentence.
        let five = "En. To! Tre?\nFire... Fem";
        assert_eq!(
            windows(five),
            [
                five,
                "En. To! Tre?\n",
                " Tre?\nFire... Fem",
                "En.",
                " To!",
                " Tre?\n",
                "Fire...",
                " Fem"
            ]
        );
        assert_eq!(windows("En. To. Tre."), ["En. To. Tre."]);
        // A long message of many sentences, one of them longer than a window: every reading
        // fits a window and together they cover every character.
        let long = format!("Kort. {}. Også kort. Siste. Slutt", "ord ".repeat(400));
        let ws = windows(&long);
        assert!(ws.iter().all(|w| w.chars().count() <= WINDOW));
        let mut covered = vec![false; long.len()];
        for w in &ws {
            let from = w.as_ptr() as usize - long.as_ptr() as usize;
            covered[from..from + w.len()].fill(true);
        }
        assert!(covered.iter().all(|c| *c));
    }
}
