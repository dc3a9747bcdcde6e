//! The on-device risk detector: a lexicon of Norwegian (bokmål and nynorsk) and English
//! expressions of suicidal ideation and self-harm, run on decrypted text on the phone —
//! never on the server. It only *suggests* a flag (and the app shows the clinic's crisis
//! resources); a human decides.
//!
//! How it reads a message:
//! 1. **Normalization**: lower case; `æ → ae`, `ø → o`, `å → a`, `ð → d`, and the ASCII
//!    spelling `aa → a`; apostrophes dropped (`don't → dont`). So "vil dø", "vil do" and
//!    "vil doe"… match alike where it matters.
//! 2. **Cues**: phrases in the writer's own voice (first person), each with a category
//!    (suicide risk or self-harm) and a severity hint: *imminent* (intent, plan, time,
//!    means: "going to kill myself tonight", "har samlet pillene"), *urgent* (wish to die,
//!    thoughts of suicide), *concerning* (self-harm, hopelessness: "orker ikke mer").
//!    Third-person reports ("the film is about a man who killed himself", "tok livet sitt")
//!    are deliberately not cues: the detector is about the person writing.
//! 3. **Negation**: a negator (`not, never, no, dont, wont, wouldnt, ikke, ikkje, aldri,
//!    ingen`) among the five words before a cue, in the same clause (clauses end at
//!    `. , ; ! ?` and at "but"/"men"), cancels it — "I would never kill myself", "jeg har
//!    ingen planer om å ta livet mitt". Negations that are part of a cue ("vil ikke leve
//!    mer") are inside the cue and do not cancel it.
//! 4. **The past**: a sentence marked as past ("used to", "years ago", "for lenge siden",
//!    "for lenge sidan", "tidligere") cancels ideation cues ("I used to think about suicide
//!    years ago").
//! 5. **Idioms**: cues are specific enough that "this traffic is killing me", "dying to
//!    see", "døde av latter", "drepende kjedelig" never match; "vil dø av flauhet" and
//!    "orker ikke mer kaffe" are excluded by what follows the cue.

use std::sync::LazyLock;

use regex::Regex;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Nb,
    Nn,
    En,
}

/// A cue that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedCue {
    pub cue: &'static str,
    pub language: Language,
}

/// What the detector suggests: flag with this category and severity. Only a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub category: RiskCategory,
    pub severity_hint: SeverityHint,
    pub matched: Vec<MatchedCue>,
    /// 0–1: 1.0 imminent, 0.8 urgent, 0.5 concerning.
    pub score: f32,
}

struct Cue {
    id: &'static str,
    language: Language,
    category: RiskCategory,
    severity: SeverityHint,
    pattern: Regex,
    /// The cue does not count if the next word is one of these.
    not_followed_by: &'static [&'static str],
    /// If set, the cue counts only at the end of the clause or before one of these words.
    only_followed_by: Option<&'static [&'static str]>,
    /// Past-tense markers cancel it (ideation, not acts or plans).
    past_cancels: bool,
}

use Language::{En, Nb, Nn};
use RiskCategory::{SelfHarm, SuicideRisk};
use SeverityHint::{Concerning, Imminent, Urgent};

/// (id, language, category, severity, pattern over the normalized text, past cancels)
const LEXICON: &[(&str, Language, RiskCategory, SeverityHint, &str, bool)] = &[
    // ---- English
    (
        "en-intent",
        En,
        SuicideRisk,
        Imminent,
        r"\b(going to|gonna|planning to|plan to|about to|will) (kill myself|end my life|end it all|take my (own )?life)\b",
        false,
    ),
    (
        "en-time",
        En,
        SuicideRisk,
        Imminent,
        r"\bkill myself (tonight|today|tomorrow|this weekend)\b",
        false,
    ),
    (
        "en-decided",
        En,
        SuicideRisk,
        Imminent,
        r"\b(decided|ready) to (end my life|kill myself|die)\b",
        false,
    ),
    (
        "en-means",
        En,
        SuicideRisk,
        Imminent,
        r"\b(have|got) the pills (ready|here)\b|\btaking all my pills\b|\btonight is the night\b",
        false,
    ),
    (
        "en-note",
        En,
        SuicideRisk,
        Imminent,
        r"\b(wrote|written|writing) (my |a )?(goodbye|suicide) (letter|note)\b",
        false,
    ),
    (
        "en-want-die",
        En,
        SuicideRisk,
        Urgent,
        r"\b(want|wanna|wish) to die\b|\bwish i (was|were) dead\b|\brather be dead\b",
        true,
    ),
    (
        "en-kill-myself",
        En,
        SuicideRisk,
        Urgent,
        r"\b(kill|killing) myself\b|\bkms\b|\bend (my life|it all)\b",
        true,
    ),
    (
        "en-suicide",
        En,
        SuicideRisk,
        Urgent,
        r"\bsuicidal\b|\b(think|thinking|thought|thoughts) (about|of) suicide\b",
        true,
    ),
    (
        "en-not-live",
        En,
        SuicideRisk,
        Urgent,
        r"\bdont want to (live|be alive)\b|\bdone with life\b|\bbetter off (dead|without me)\b|\bnobody would miss me\b|\bdisappear forever\b",
        true,
    ),
    (
        "en-hopeless",
        En,
        SuicideRisk,
        Concerning,
        r"\bcant go on\b|\bno point (in )?living\b|\bdont want to wake up\b",
        true,
    ),
    (
        "en-self-harm",
        En,
        SelfHarm,
        Concerning,
        r"\b(cutting|cut|hurt|hurting|harm|harming) myself\b|\bself ?harm(ing)?\b",
        false,
    ),
    // ---- bokmål
    (
        "nb-intent",
        Nb,
        SuicideRisk,
        Imminent,
        r"\b(bestemt meg for|skal|kommer til) a ta livet (mitt|av meg)\b|\bta livet mitt (i kveld|i natt|i dag|i morgen)\b",
        false,
    ),
    (
        "nb-means",
        Nb,
        SuicideRisk,
        Imminent,
        r"\bsamlet pillene\b|\b(pillene|tablettene) (ligger |er )?klare\b|\bavskjedsbrev\b|\bplanlagt hvordan\b",
        false,
    ),
    (
        "nb-die",
        Nb,
        SuicideRisk,
        Urgent,
        r"\b(vil|har lyst til a|har lyst a|onsker a|ma) do\b",
        true,
    ),
    (
        "nb-take-life",
        Nb,
        SuicideRisk,
        Urgent,
        r"\b(ta|tar) livet (mitt|av meg)\b|\bta en overdose\b|\bgjore slutt pa alt\b",
        true,
    ),
    (
        "nb-not-live",
        Nb,
        SuicideRisk,
        Urgent,
        r"\bvil ikke leve (mer|lenger)\b|\borker ikke (a )?leve\b|\bingen vits (i |a )+leve\b|\bvil ikke vakne\b",
        true,
    ),
    (
        "nb-suicide",
        Nb,
        SuicideRisk,
        Urgent,
        r"\bselvmord\w*",
        true,
    ),
    (
        "nb-dead",
        Nb,
        SuicideRisk,
        Urgent,
        r"\bjeg var dod\b|\bingen ville savnet meg\b|\bforsvinne for godt\b",
        true,
    ),
    (
        "nb-cannot",
        Nb,
        SuicideRisk,
        Concerning,
        r"\borker ikke mer\b",
        true,
    ),
    (
        "nb-self-harm",
        Nb,
        SelfHarm,
        Concerning,
        r"\b(skade|skader|skadet) meg (selv|sjolv)\b|\b(kutte|kuttet|kutter|risper|rispet) meg\b",
        false,
    ),
    // ---- nynorsk
    (
        "nn-intent",
        Nn,
        SuicideRisk,
        Imminent,
        r"\b(bestemt meg for|skal|kjem til) a ta livet (mitt|av meg)\b|\bsamla pillene\b",
        false,
    ),
    (
        "nn-die",
        Nn,
        SuicideRisk,
        Urgent,
        r"\b(vil|har lyst til a|onskjer a|ma) doy\b",
        true,
    ),
    (
        "nn-not-live",
        Nn,
        SuicideRisk,
        Urgent,
        r"\bvil ikkje (leva|leve) (lenger|meir)\b|\borkar ikkje (a )?leve\b|\bvil ikkje vakne\b|\bgjere slutt pa alt\b",
        true,
    ),
    (
        "nn-suicide",
        Nn,
        SuicideRisk,
        Urgent,
        r"\bsjolvmord\w*",
        true,
    ),
    (
        "nn-dead",
        Nn,
        SuicideRisk,
        Urgent,
        r"\beg var dod\b|\bingen ville sakna meg\b",
        true,
    ),
    (
        "nn-cannot",
        Nn,
        SuicideRisk,
        Concerning,
        r"\borkar ikkje meir\b",
        true,
    ),
    (
        "nn-self-harm",
        Nn,
        SelfHarm,
        Concerning,
        r"\b(skade|skadar|skada) meg sjolv\b|\b(kutta|kuttar|kutte) meg\b",
        false,
    ),
];

/// Words after "orker ikke mer" / "orkar ikkje meir" that keep it about life, not coffee.
const AFTER_CANNOT: &[&str] = &["av", "na", "no", "jeg", "eg", "i", "med", "dette"];

static CUES: LazyLock<Vec<Cue>> = LazyLock::new(|| {
    LEXICON
        .iter()
        .map(
            |(id, language, category, severity, pattern, past_cancels)| Cue {
                id,
                language: *language,
                category: *category,
                severity: *severity,
                pattern: Regex::new(pattern).expect("the lexicon's patterns are valid"),
                not_followed_by: if id.ends_with("-die") { &["av"] } else { &[] },
                only_followed_by: id.ends_with("-cannot").then_some(AFTER_CANNOT),
                past_cancels: *past_cancels,
            },
        )
        .collect()
});

const NEGATORS: &[&str] = &[
    "not", "never", "no", "dont", "wont", "wouldnt", "ikke", "ikkje", "aldri", "ingen",
];

const PAST: &[&str] = &[
    "used to",
    "years ago",
    "for lenge siden",
    "for lenge sidan",
    "tidligere",
    "tidlegare",
];

/// Lower case, Norwegian letters folded to their ASCII spellings, apostrophes dropped.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'æ' => out.push_str("ae"),
            'ø' | 'ö' => out.push('o'),
            'å' | 'ä' => out.push('a'),
            'ð' => out.push('d'),
            '\'' | '’' | '`' => {}
            c => out.push(c),
        }
    }
    out.replace("aa", "a")
}

fn is_clause_break(c: char) -> bool {
    matches!(c, '.' | ',' | ';' | '!' | '?' | '\n' | ':')
}

/// The words of the clause before byte `at`, last one last.
fn words_before(text: &str, at: usize) -> Vec<&str> {
    let head = &text[..at];
    let start = head.rfind(is_clause_break).map(|i| i + 1).unwrap_or(0);
    let mut words: Vec<&str> = head[start..]
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(i) = words.iter().rposition(|w| *w == "but" || *w == "men") {
        words.drain(..=i);
    }
    words
}

fn next_word(text: &str, at: usize) -> Option<&str> {
    let tail = &text[at..];
    let clause_end = tail.find(is_clause_break).unwrap_or(tail.len());
    tail[..clause_end]
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
}

/// Suggests a flag for `text`, or `None`. Never panics; long input is read in full.
pub fn assess(text: &str) -> Option<Suggestion> {
    let norm = normalize(text);
    let past = PAST.iter().any(|p| norm.contains(p));
    let mut matched = Vec::new();
    let mut best: Option<SeverityHint> = None;
    let mut suicide = false;
    for cue in CUES.iter() {
        for m in cue.pattern.find_iter(&norm) {
            let before = words_before(&norm, m.start());
            let negated = before.iter().rev().take(5).any(|w| NEGATORS.contains(w));
            if negated || (past && cue.past_cancels) {
                continue;
            }
            let next = next_word(&norm, m.end());
            if next.is_some_and(|n| cue.not_followed_by.contains(&n)) {
                continue;
            }
            if let (Some(allowed), Some(n)) = (cue.only_followed_by, next)
                && !allowed.contains(&n)
            {
                continue;
            }
            matched.push(MatchedCue {
                cue: cue.id,
                language: cue.language,
            });
            suicide |= cue.category == SuicideRisk;
            best = Some(best.map_or(cue.severity, |b| b.min(cue.severity)));
            break;
        }
    }
    let severity = best?;
    Some(Suggestion {
        category: if suicide { SuicideRisk } else { SelfHarm },
        severity_hint: severity,
        score: match severity {
            Imminent => 1.0,
            Urgent => 0.8,
            Concerning => 0.5,
        },
        matched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negation_and_the_past_cancel_ideation() {
        assert!(assess("I would never kill myself").is_none());
        assert!(assess("jeg har ingen planer om å ta livet mitt").is_none());
        assert!(assess("I used to think about suicide years ago").is_none());
        assert!(assess("I want to die").is_some());
        assert!(assess("I don't want to die, but I want to die sometimes").is_some());
    }

    #[test]
    fn ascii_spellings_match_like_norwegian_letters() {
        for t in [
            "jeg vil dø",
            "jeg vil do",
            "jeg vil ikke vaakne",
            "jeg vil gjore slutt paa alt",
        ] {
            assert!(assess(t).is_some(), "{t}");
        }
    }

    #[test]
    fn severity_and_category() {
        let s = assess("Eg skal ta livet mitt i kveld").expect("risk");
        assert_eq!((s.severity_hint, s.category), (Imminent, SuicideRisk));
        let s = assess("jeg har kuttet meg igjen").expect("risk");
        assert_eq!((s.severity_hint, s.category), (Concerning, SelfHarm));
        let s = assess("I cut myself and I want to die").expect("risk");
        assert_eq!((s.severity_hint, s.category), (Urgent, SuicideRisk));
    }

    #[test]
    fn idioms_do_not_fire() {
        for t in [
            "this traffic is killing me",
            "jeg døde av latter",
            "drepende kjedelig",
            "Jeg vil dø av flauhet",
            "Jeg orker ikke mer kaffe",
        ] {
            assert!(assess(t).is_none(), "{t}");
        }
    }

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
            &"dø ".repeat(20_000),
        ] {
            let _ = assess(t);
        }
    }
}
