//! Chat normalisation and feature hashing for the risk detector: the bit-for-bit mirror of
//! `mls/detector/features.py`, which the model was trained with. Both read the same tables
//! (`mls/detector/lexicon.tsv`); `tests/detector_model.rs` checks tokens, feature indices and
//! scores against fixtures the training script exported, so any drift fails a test.
//!
//! After the first step every string is ASCII, so the matching below works on bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

const LEXICON: &str = include_str!("../../detector/lexicon.tsv");

/// The embedded lexicon's size in bytes.
pub const LEXICON_SIZE: usize = LEXICON.len();

/// The token between clauses.
const BREAK: &str = ".";
/// Words allowed between the parts of a lexicon entry ("vil bare dø").
const MAX_GAP: usize = 2;
/// Lexicon words this long also match words this long at edit distance 1 (typos).
const FUZZY_MIN: usize = 5;
/// And stems (entries ending in `*`) this long.
const FUZZY_STEM_MIN: usize = 7;

const RISK_CONCEPTS: [&str; 8] = [
    "burden", "die", "hopeless", "nolive", "selfharm", "stopmeds", "suicide", "viruswin",
];
/// Rule lexicons that make a clause count as naming a risk.
const RISK_RULES: [&str; 2] = ["goodbye", "plan"];
/// Rule lexicons of which one must match, in a clause that names a risk, for an *imminent*
/// severity: a plan, means or time.
pub const GATE: [&str; 3] = ["plan", "means", "time"];

const APOSTROPHES: [char; 5] = ['\'', '\u{2019}', '`', '\u{02bc}', '\u{2018}'];
const BREAKS: [char; 7] = ['.', ',', ';', ':', '!', '\n', '\u{2026}'];

/// Joiners, variation selectors and skin tones: part of an emoji, not a separator.
fn is_ignored(c: char) -> bool {
    matches!(c, '\u{200d}' | '\u{fe0f}' | '\u{fe0e}') || ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

/// One lexicon entry: a token sequence, the last one a stem when `prefix`.
struct Entry {
    name: &'static str,
    seq: Vec<String>,
    prefix: bool,
}

struct Tables {
    chars: HashMap<char, &'static str>,
    emoji: HashMap<char, String>,
    pairs: HashMap<(String, String), Vec<String>>,
    singles: HashMap<String, Vec<String>>,
    neg: HashSet<String>,
    rules: Vec<Entry>,
    concepts: Vec<Entry>,
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let mut chars = HashMap::new();
    let mut emoji = HashMap::new();
    let (mut words, mut rules, mut concepts) = (Vec::new(), Vec::new(), Vec::new());
    for line in LEXICON.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split('\t');
        let (Some(kind), Some(a), Some(b), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("lexicon.tsv: a line is not kind<TAB>from<TAB>to: {line:?}");
        };
        let mut single = a.chars();
        match (kind, single.next(), single.next()) {
            ("char", Some(c), None) => {
                chars.insert(c, b);
            }
            ("emoji", Some(c), None) => {
                emoji.insert(c, format!("emj{b}"));
            }
            ("char" | "emoji", ..) => panic!("lexicon.tsv: not one character: {line:?}"),
            ("word", ..) => words.push((a, b)),
            ("rule", ..) => rules.push((a, b)),
            ("concept", ..) => concepts.push((a, b)),
            _ => panic!("lexicon.tsv: unknown kind: {line:?}"),
        }
    }
    let mut tables = Tables {
        chars,
        emoji,
        pairs: HashMap::new(),
        singles: HashMap::new(),
        neg: HashSet::new(),
        rules: Vec::new(),
        concepts: Vec::new(),
    };
    for (a, b) in words {
        let key = raw_tokens(&tables, a);
        let val = if b == "-" {
            Vec::new()
        } else {
            raw_tokens(&tables, b)
        };
        match <[String; 2]>::try_from(key) {
            Ok([x, y]) => {
                tables.pairs.insert((x, y), val);
            }
            Err(key) if key.len() == 1 => {
                tables.singles.insert(key[0].clone(), val);
            }
            Err(_) => panic!("lexicon.tsv: a word rewrite of more than two tokens: {a}"),
        }
    }
    let neg: HashSet<String> = concepts
        .iter()
        .filter(|(name, _)| *name == "neg")
        .flat_map(|(_, text)| raw_tokens(&tables, text))
        .flat_map(|t| tables.singles.get(&t).cloned().unwrap_or_else(|| vec![t]))
        .collect();
    tables.neg = neg;
    tables.rules = entries(&tables, &rules);
    tables.concepts = entries(&tables, &concepts);
    tables
});

/// Lexicon entries spelt as the rewritten text (stems as typed).
fn entries(tables: &Tables, raw: &[(&'static str, &'static str)]) -> Vec<Entry> {
    let mut out = Vec::new();
    for (name, text) in raw {
        let prefix = text.ends_with('*');
        let seq = raw_tokens(tables, text.trim_end_matches('*'));
        let last = seq.len().saturating_sub(1);
        let mut rewritten = Vec::new();
        for (k, t) in seq.into_iter().enumerate() {
            match tables.singles.get(&t) {
                Some(rep) if !(prefix && k == last) => rewritten.extend(rep.iter().cloned()),
                _ => rewritten.push(t),
            }
        }
        if !rewritten.is_empty() {
            out.push(Entry {
                name,
                seq: rewritten,
                prefix,
            });
        }
    }
    out
}

/// Step 1: lower case, letters spelt in ASCII, emoji as tokens, clause breaks as " . ".
fn ascii(tables: &Tables, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii_uppercase() {
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_lowercase() {
            out.push(c);
        } else if c.is_ascii_digit() {
            out.push('0');
        } else if let Some(s) = tables.chars.get(&c) {
            out.push_str(s);
        } else if APOSTROPHES.contains(&c) || is_ignored(c) {
        } else if let Some(e) = tables.emoji.get(&c) {
            out.push(' ');
            out.push_str(e);
            out.push(' ');
        } else if c == '?' {
            out.push_str(" emjqmark . ");
        } else if BREAKS.contains(&c) {
            out.push_str(" . ");
        } else {
            out.push(' ');
        }
    }
    out
}

/// Step 2: "ae" → "e", "oe" → "o", then every run of one character collapses to one.
fn fold(s: &str) -> String {
    let s = s.replace("ae", "e").replace("oe", "o");
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    for c in s.chars() {
        if Some(c) != prev {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

fn raw_tokens(tables: &Tables, text: &str) -> Vec<String> {
    fold(&ascii(tables, text))
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The normalised tokens of `text`, with "." between clauses (never first, last or twice in
/// a row): ASCII spellings, repeated letters collapsed, dialect, nynorsk and typo forms
/// rewritten to one spelling, emoji as `emj…` tokens.
pub fn normalise(text: &str) -> Vec<String> {
    let tables = &*TABLES;
    let toks = raw_tokens(tables, text);
    let mut out: Vec<String> = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let pair = toks
            .get(i + 1)
            .and_then(|next| tables.pairs.get(&(toks[i].clone(), next.clone())));
        let rep: &[String] = if let Some(rep) = pair {
            i += 2;
            rep
        } else {
            i += 1;
            tables
                .singles
                .get(&toks[i - 1])
                .map_or(std::slice::from_ref(&toks[i - 1]), Vec::as_slice)
        };
        for t in rep {
            if t == BREAK && out.last().is_none_or(|l| l == BREAK) {
                continue;
            }
            out.push(t.clone());
        }
    }
    while out.last().is_some_and(|l| l == BREAK) {
        out.pop();
    }
    out
}

/// Tokens split at "." and before "men"/"but" (a new clause starts there).
fn clauses(tokens: &[String]) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for t in tokens {
        if t == BREAK {
            out.push(std::mem::take(&mut cur));
        } else if (t == "men" || t == "but") && !cur.is_empty() {
            out.push(std::mem::replace(&mut cur, vec![t.as_str()]));
        } else {
            cur.push(t);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.retain(|c| !c.is_empty());
    out
}

/// Optimal-string-alignment distance between `a` and `b` is at most 1.
fn within_one(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    if la == lb {
        let diff: Vec<usize> = (0..la).filter(|&i| a[i] != b[i]).collect();
        return match diff[..] {
            [_] => true,
            [i, j] => j == i + 1 && a[i] == b[j] && a[j] == b[i],
            _ => false,
        };
    }
    let (a, b) = if la < lb { (b, a) } else { (a, b) };
    let mut i = 0;
    while i < b.len() && a[i] == b[i] {
        i += 1;
    }
    a[i + 1..] == b[i..]
}

fn word_matches(tok: &str, word: &str, prefix: bool) -> bool {
    let (t, w) = (tok.as_bytes(), word.as_bytes());
    if prefix {
        if t.starts_with(w) {
            return true;
        }
        if w.len() < FUZZY_STEM_MIN {
            return false;
        }
        return [w.len() - 1, w.len(), w.len() + 1]
            .into_iter()
            .any(|n| t.len() >= n && within_one(&t[..n], w));
    }
    t == w || (w.len() >= FUZZY_MIN && t.len() >= FUZZY_MIN && within_one(t, w))
}

/// `entry` matches starting at token `i`, each later word at most [`MAX_GAP`] words after
/// the one before, with no negation in between ("vil ikke dø" is not "vil dø").
fn seq_at(neg: &HashSet<String>, tokens: &[&str], i: usize, entry: &Entry) -> bool {
    let last = entry.seq.len() - 1;
    if !word_matches(tokens[i], &entry.seq[0], entry.prefix && last == 0) {
        return false;
    }
    let mut pos = i;
    for k in 1..entry.seq.len() {
        let mut found = None;
        for (j, tok) in tokens
            .iter()
            .enumerate()
            .take((pos + 2 + MAX_GAP).min(tokens.len()))
            .skip(pos + 1)
        {
            if word_matches(tok, &entry.seq[k], entry.prefix && k == last) {
                found = Some(j);
                break;
            }
            if neg.contains(*tok) {
                break;
            }
        }
        match found {
            Some(j) => pos = j,
            None => return false,
        }
    }
    true
}

/// Each lexicon name with a match in `tokens` → where its earliest match starts.
fn first_matches(
    neg: &HashSet<String>,
    lexicon: &[Entry],
    tokens: &[&str],
) -> BTreeMap<&'static str, usize> {
    let mut first = BTreeMap::new();
    for entry in lexicon {
        let bound = first.get(entry.name).copied().unwrap_or(tokens.len());
        if let Some(i) = (0..bound).find(|&i| seq_at(neg, tokens, i, entry)) {
            first.insert(entry.name, i);
        }
    }
    first
}

/// What the feature extraction learns about a message's clauses.
struct Analysis<'a> {
    clauses: Vec<Vec<&'a str>>,
    concepts: Vec<BTreeMap<&'static str, usize>>,
    rules: Vec<BTreeMap<&'static str, usize>>,
}

fn analyse(tokens: &[String]) -> Analysis<'_> {
    let tables = &*TABLES;
    let clauses = clauses(tokens);
    let concepts = clauses
        .iter()
        .map(|c| first_matches(&tables.neg, &tables.concepts, c))
        .collect();
    let rules = clauses
        .iter()
        .map(|c| first_matches(&tables.neg, &tables.rules, c))
        .collect();
    Analysis {
        clauses,
        concepts,
        rules,
    }
}

impl Analysis<'_> {
    /// The rule lexicons with a match inside one clause, sorted by name.
    fn rule_names(&self) -> BTreeSet<&'static str> {
        self.rules.iter().flat_map(|r| r.keys().copied()).collect()
    }

    /// The clauses that name a risk concept or a risk rule: the only ones whose words and
    /// n-grams become features (so everyday sentences cannot add up to a risk score).
    fn risk_clauses(&self) -> impl Iterator<Item = (&Vec<&str>, &BTreeMap<&'static str, usize>)> {
        self.clauses
            .iter()
            .zip(self.concepts.iter().zip(&self.rules))
            .filter(|(_, (concepts, rules))| {
                RISK_CONCEPTS.iter().any(|r| concepts.contains_key(r))
                    || RISK_RULES.iter().any(|r| rules.contains_key(r))
            })
            .map(|(c, (_, rules))| (c, rules))
    }

    /// Whether a clause that names a risk also names a plan, a means or a time (required for
    /// *imminent*; a pill or a time in a medication routine does not count).
    fn gate(&self) -> bool {
        self.risk_clauses()
            .any(|(_, rules)| GATE.iter().any(|g| rules.contains_key(g)))
    }
}

/// 32-bit FNV-1a.
fn fnv1a(s: &str) -> u32 {
    fnv1a_more(0x811C_9DC5, s.as_bytes())
}

/// Bits of each n-gram block: block 0 holds word unigrams and bigrams, block 1 the
/// character 2- to 5-grams of each word padded with spaces.
pub const BITS: u32 = 18;

/// What the model reads from a message.
pub struct Features {
    /// Every n-gram bucket present and how often, ascending by bucket.
    pub counts: Vec<(u32, u32)>,
    /// Whether a clause that names a risk also names a plan, means or time (required for
    /// *imminent*).
    pub gate: bool,
    /// The rule lexicons that matched (plan, means, time, goodbye, meds, virus).
    pub rules: Vec<&'static str>,
}

/// FNV-1a continued over more bytes.
fn fnv1a_more(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The n-gram buckets of the normalised words with their counts (see `features.py`): the
/// hashes are built incrementally, without a string per gram.
pub fn ngram_counts(tokens: &[String]) -> Vec<(u32, u32)> {
    let words: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| *t != BREAK)
        .collect();
    let mask = (1u32 << BITS) - 1;
    let mut buckets: Vec<u32> = Vec::with_capacity(words.len() * 24);
    let w0 = fnv1a("w");
    for (i, w) in words.iter().enumerate() {
        let h = fnv1a_more(w0, w.as_bytes());
        buckets.push(h & mask);
        if let Some(next) = words.get(i + 1) {
            let pair = fnv1a_more(fnv1a_more(h, b" "), next.as_bytes());
            buckets.push(pair & mask);
        }
    }
    let c0 = fnv1a("c");
    let mut utf8 = [0u8; 4];
    for w in &words {
        let padded: Vec<char> = std::iter::once(' ')
            .chain(w.chars())
            .chain(std::iter::once(' '))
            .collect();
        for start in 0..padded.len() {
            let mut h = c0;
            for (len, ch) in padded[start..].iter().take(5).enumerate() {
                h = fnv1a_more(h, ch.encode_utf8(&mut utf8).as_bytes());
                if len >= 1 {
                    buckets.push((1 << BITS) | (h & mask));
                }
            }
        }
    }
    buckets.sort_unstable();
    let mut counts: Vec<(u32, u32)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match counts.last_mut() {
            Some((last, n)) if *last == b => *n += 1,
            _ => counts.push((b, 1)),
        }
    }
    counts
}

/// The *imminent* gate and the rule lexicons that matched, from the normalised tokens (the
/// lexicon matching is the costly part: the detector asks only when a reading is flagged).
pub fn gate_and_rules(tokens: &[String]) -> (bool, Vec<&'static str>) {
    let analysis = analyse(tokens);
    (analysis.gate(), analysis.rule_names().into_iter().collect())
}

/// The features of `text`, exactly as the training pipeline computes them.
pub fn features(text: &str) -> Features {
    let tokens = normalise(text);
    let (gate, rules) = gate_and_rules(&tokens);
    Features {
        counts: ngram_counts(&tokens),
        gate,
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_one() {
        assert!(within_one(b"livet", b"livte"));
        assert!(within_one(b"suicide", b"suicid"));
        assert!(within_one(b"overdose", b"overdoes"));
        assert!(!within_one(b"kutte", b"katta"));
        assert!(!within_one(b"abc", b"abcde"));
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(""), 0x811C_9DC5);
        assert_eq!(fnv1a("a"), 0xE40C_292C);
        assert_eq!(fnv1a("foobar"), 0xBF9C_F968);
    }
}
