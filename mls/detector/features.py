"""The detector's normalisation and feature hashing, mirrored bit for bit by
mls/src/detector.rs. Every change here must be made there too; the fixtures that
train.py writes (fixtures.json) make the Rust tests fail when the two drift apart.

normalise(text) -> list of tokens
  1. per character: A-Z lowered; letters in lexicon.tsv's `char` table spelled in ASCII
     (æ -> ae, ø -> oe, å -> aa, é -> e ...); other ASCII letters and digits kept (every digit
     becomes 0); apostrophes dropped (don't -> dont); emoji in the `emoji` table become a
     token "emj<name>"; everything else separates words.
  2. on the ASCII string: "ae" -> "e", then "oe" -> "o" (so æ/ae/e, ø/oe/o, å/aa/a meet),
     then every run of one repeated character collapses to one ("kill" -> "kil",
     "ikkje" -> "ikje", "soooo" -> "so", "aa" -> "a").
  3. split on spaces; token pairs, then single tokens, rewritten by the `word` table
     (dialect, nynorsk and typo forms to one spelling).

features(text) -> [(bucket, count)] ascending
  block 0: word unigrams and bigrams ("w" + gram), block 1: character 2- to 5-grams of each
  word padded with spaces ("c" + gram); each hashed with 32-bit FNV-1a over its UTF-8 bytes
  into its block's 2^NGRAM_BITS buckets.

rules(tokens), gate(text): the rule lexicons (plan, means, time, goodbye, medication) and
whether a clause naming a risk concept also names a plan, means or time (the *imminent*
gate). The concept lexicons serve only this gate now: the model reads the n-grams.
"""
from __future__ import annotations

import os

APOSTROPHES = {"'", "\u2019", "`", "\u02bc", "\u2018"}
# Joiners, variation selectors and skin tones: part of an emoji, not a separator.
BREAKS = {".", ",", ";", ":", "!", "\n", "\u2026"}
IGNORED = {"\u200d", "\ufe0f", "\ufe0e"} | {chr(c) for c in range(0x1F3FB, 0x1F400)}

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_tables(path: str = os.path.join(HERE, "lexicon.tsv")):
    chars, emoji, words_raw, rules_raw, concepts_raw = {}, {}, [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            kind, a, b = line.split("\t")
            if kind == "char":
                chars[a] = b
            elif kind == "emoji":
                emoji[a] = "emj" + b
            elif kind == "word":
                words_raw.append((a, b))
            elif kind == "rule":
                rules_raw.append((a, b))
            elif kind == "concept":
                concepts_raw.append((a, b))
            else:
                raise ValueError(f"unknown kind {kind}")
    return chars, emoji, words_raw, rules_raw, concepts_raw


CHARS, EMOJI, _WORDS_RAW, _RULES_RAW, _CONCEPTS_RAW = _load_tables()


def _ascii(text: str) -> str:
    out = []
    for c in text:
        if "A" <= c <= "Z":
            out.append(c.lower())
        elif "a" <= c <= "z":
            out.append(c)
        elif "0" <= c <= "9":
            out.append("0")
        elif c in CHARS:
            out.append(CHARS[c])
        elif c in APOSTROPHES or c in IGNORED:
            pass
        elif c in EMOJI:
            out.append(" " + EMOJI[c] + " ")
        elif c == "?":
            out.append(" emjqmark . ")
        elif c in BREAKS:
            out.append(" . ")
        else:
            out.append(" ")
    return "".join(out)


def _fold(s: str) -> str:
    s = s.replace("ae", "e").replace("oe", "o")
    out = []
    prev = None
    for c in s:
        if c != prev:
            out.append(c)
        prev = c
    return "".join(out)


def _raw_tokens(text: str) -> list[str]:
    return [t for t in _fold(_ascii(text)).split(" ") if t]


def _table(raw):
    pairs, singles = {}, {}
    for a, b in raw:
        key = _raw_tokens(a)
        val = [] if b == "-" else _raw_tokens(b)
        if len(key) == 1:
            singles[key[0]] = val
        elif len(key) == 2:
            pairs[(key[0], key[1])] = val
        else:
            raise ValueError(f"word rewrite of more than two tokens: {a}")
    return pairs, singles


PAIRS, SINGLES = _table(_WORDS_RAW)
NEG_WORDS = frozenset(
    t for name, text in _CONCEPTS_RAW if name == "neg" for t in _raw_tokens(text)
    for t in SINGLES.get(t, [t])
)
BREAK = "."
GATE = ("plan", "means", "time")


def _lexicon(raw):
    """(name, token sequence, last token is a prefix), sorted, from (name, text) pairs."""
    out = set()
    for name, text in raw:
        prefix = text.endswith("*")
        seq = tuple(_raw_tokens(text.rstrip("*")))
        rewritten = []
        for k, t in enumerate(seq):  # entries are spelt as the rewritten text, stems as typed
            rewritten.extend([t] if prefix and k == len(seq) - 1 else SINGLES.get(t, [t]))
        out.add((name, tuple(rewritten), prefix))
    return sorted(out)


RULES = _lexicon(_RULES_RAW)
CONCEPTS = _lexicon(_CONCEPTS_RAW)
# Concepts that carry risk; the others modify them.
RISK_CONCEPTS = ("burden", "die", "hopeless", "nolive", "selfharm", "stopmeds", "suicide", "viruswin")


def normalise(text: str) -> list[str]:
    """Tokens, with "." between clauses (never first, last or twice in a row)."""
    toks = _raw_tokens(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        if i + 1 < len(toks) and (toks[i], toks[i + 1]) in PAIRS:
            rep = PAIRS[(toks[i], toks[i + 1])]
            i += 2
        else:
            rep = SINGLES.get(toks[i], [toks[i]])
            i += 1
        for t in rep:
            if t == BREAK and (not out or out[-1] == BREAK):
                continue
            out.append(t)
    while out and out[-1] == BREAK:
        out.pop()
    return out


def clauses(tokens: list[str]) -> list[list[str]]:
    """Tokens split at "." and before "men"/"but" (a new clause starts there)."""
    out, cur = [], []
    for t in tokens:
        if t == BREAK:
            out.append(cur)
            cur = []
        elif t in ("men", "but") and cur:
            out.append(cur)
            cur = [t]
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    return [c for c in out if c]


MAX_GAP = 2  # words allowed between the parts of a lexicon entry ("vil bare dø")
FUZZY_MIN = 5  # lexicon words this long also match words this long at edit distance 1 (typos)
FUZZY_STEM_MIN = 7  # and stems (entries ending in *) this long


def _within_one(a: str, b: str) -> bool:
    """Optimal-string-alignment distance between a and b is at most 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if la < lb:
        a, b = b, a  # a is the longer
    i = 0
    while i < len(b) and a[i] == b[i]:
        i += 1
    return a[i + 1 :] == b[i:]


def _word_matches(tok: str, word: str, prefix: bool) -> bool:
    if prefix:
        if tok.startswith(word):
            return True
        if len(word) < FUZZY_STEM_MIN:
            return False
        return any(_within_one(tok[: len(word) + d], word) for d in (-1, 0, 1) if len(tok) >= len(word) + d)
    if tok == word:
        return True
    return len(word) >= FUZZY_MIN and len(tok) >= FUZZY_MIN and _within_one(tok, word)


def _seq_at(tokens, i, seq, prefix) -> bool:
    """seq matches starting at token i, each later word at most MAX_GAP words after the last."""
    last = len(seq) - 1
    if not _word_matches(tokens[i], seq[0], prefix and last == 0):
        return False
    pos = i
    for k in range(1, len(seq)):
        found = -1
        for j in range(pos + 1, min(len(tokens), pos + 2 + MAX_GAP)):
            if _word_matches(tokens[j], seq[k], prefix and k == last):
                found = j
                break
            if tokens[j] in NEG_WORDS:  # "vil ikke dø" is not "vil dø"
                break
        if found < 0:
            return False
        pos = found
    return True


def _first_matches(lexicon, tokens) -> dict:
    """Each lexicon name with a match in `tokens` -> the token index where its first match starts."""
    first = {}
    for name, seq, prefix in lexicon:
        for i in range(len(tokens)):
            if i >= first.get(name, len(tokens)):
                break
            if _seq_at(tokens, i, seq, prefix):
                first[name] = i
                break
    return first


def _matches(lexicon, tokens):
    return set(_first_matches(lexicon, tokens))


def rules(tokens: list[str]) -> list[str]:
    """The rule lexicons with a match inside one clause of `tokens`, sorted by name."""
    hit = set()
    for c in clauses(tokens):
        hit |= _matches(RULES, c)
    return sorted(hit)


def fnv1a(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


RISK_RULES = ("goodbye", "plan")


def risk_clauses(tokens: list[str]) -> list[list[str]]:
    """The clauses that name a risk concept or a risk rule (where the gate looks)."""
    out = []
    for c in clauses(tokens):
        hit = _matches(CONCEPTS, c) | _matches(RULES, c)
        if any(r in hit for r in RISK_CONCEPTS + RISK_RULES):
            out.append(c)
    return out


# The model reads the normalised words as a bag of n-grams: word unigrams and bigrams, and
# the character 2- to 5-grams of each word padded with spaces (so prefixes, suffixes and
# typos share grams). Each kind is hashed into its own block of 2^NGRAM_BITS buckets; a
# message's features are (bucket, count) pairs, ascending. The weights file carries each
# bucket's idf; a block's tf-idf vector is L2-normalised on its own.
NGRAM_BITS = 18
BLOCKS = ("w", "c")


def grams(tokens: list[str]) -> tuple[list[str], list[str]]:
    words = [t for t in tokens if t != BREAK]
    w = words + [a + " " + b for a, b in zip(words, words[1:])]
    c = []
    for word in words:
        p = " " + word + " "
        for n in range(2, 6):
            c.extend(p[i : i + n] for i in range(len(p) - n + 1))
    return w, c


def features(text: str) -> list[tuple[int, int]]:
    """(bucket, count) of every n-gram bucket present in `text`, ascending by bucket."""
    counts = {}
    mask = (1 << NGRAM_BITS) - 1
    for block, gs in enumerate(grams(normalise(text))):
        prefix = BLOCKS[block]
        for g in gs:
            b = (block << NGRAM_BITS) | (fnv1a(prefix + g) & mask)
            counts[b] = counts.get(b, 0) + 1
    return sorted(counts.items())


def gate(text: str) -> bool:
    """Whether a clause that names a risk also names a plan, a means or a time (required for
    *imminent*; a pill or a time in a medication routine does not count)."""
    return any(r in GATE for c in risk_clauses(normalise(text)) for r in _matches(RULES, c))


def canonical(text: str) -> str:
    """The normalised text, for duplicate and disjointness checks."""
    return " ".join(t for t in normalise(text) if t != BREAK)
