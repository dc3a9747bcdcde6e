"""Expands the hand-written templates in corpus_src/ into corpus.jsonl.

Deterministic (seeded by the template text), so running it again reproduces the committed
file byte for byte; `python3 build_corpus.py --check` verifies that.

- Each template line is expanded into a few variants: alternatives and slots filled, then
  chat noise applied with fixed probabilities that are the same for risk and safe messages
  (lower case, Norwegian letters typed as ae/oe/aa or a/o, missing final punctuation, a
  stretched vowel, one typo, an everyday emoji, a neutral opening line).
- Near-duplicate templates (character-trigram Jaccard >= 0.5 between their canonical base
  forms, across languages too, e.g. a bokmål sentence and its nynorsk translation) form one
  group; the split is assigned per group, once, by a seeded hash: about 25 % of the groups
  are `test` (held out, never trained or tuned on), the rest `train`.
- Variants whose normalised text (features.canonical) duplicates an earlier message are
  dropped, so no held-out text equals a training text after normalisation.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys

import features

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "corpus_src")
OUT = os.path.join(HERE, "corpus.jsonl")
LANGS = ("nb", "nn", "en")
SPLIT_SALT = "peerbridge-detector-split-v1"
TEST_SHARE = 0.25
# Variants per template: fewer for risk templates, so the corpus is about 35/65.
VARIANTS = {"risk": 4, "none": 7}
NOISE_EMOJI = ["🙂", "😅", "🙏", "❤️", "😕", "😔", "😊", "👍"]
CTX_END = {
    "nb": ["Beklager at jeg maser.", "Takk for at du leser.", "Vi snakkes.", "Bare så du vet det."],
    "nn": ["Orsak at eg masar.", "Takk for at du les.", "Vi snakkast.", "Berre så du veit det."],
    "en": ["Sorry for rambling.", "Thanks for reading.", "Talk soon.", "Just so you know."],
}
RISK_CATEGORIES = {"suicidal_ideation", "goodbye_plan_means", "medication_refusal", "self_harm"}


def parse(lang: str):
    slots, templates = {}, []
    section = None
    with open(os.path.join(SRC, f"{lang}.txt"), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("$"):
                name, _, values = line[1:].partition("=")
                slots[name.strip()] = [v.strip() for v in values.split("|")]
            elif line.startswith("@"):
                parts = line[1:].split()
                category, severity = parts[0], parts[1]
                kind = parts[2] if len(parts) > 2 else category
                section = (category, severity, kind)
            else:
                if section is None:
                    raise ValueError(f"{lang}.txt:{lineno}: template before a section")
                templates.append((line, *section))
    return slots, templates


ALT = re.compile(r"\[([^\]]*)\]")
SLOT = re.compile(r"\{([A-Z]+)\}")


def fill(template: str, slots: dict, rng: random.Random) -> str:
    text = ALT.sub(lambda m: rng.choice(m.group(1).split("|")), template)
    text = SLOT.sub(lambda m: rng.choice(slots.get(m.group(1), NOISE_EMOJI)) if m.group(1) != "EMO" else rng.choice(NOISE_EMOJI), text)
    return re.sub(r"\s+", " ", text).strip()


def base_form(template: str, slots: dict) -> str:
    text = ALT.sub(lambda m: m.group(1).split("|")[0], template)
    text = SLOT.sub("", text)
    return features.canonical(text)


ASCII_NO = [
    {"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"},
    {"æ": "e", "ø": "o", "å": "a", "Æ": "E", "Ø": "O", "Å": "A"},
]


def noise(text: str, lang: str, slots: dict, rng: random.Random) -> str:
    if rng.random() < 0.2 and "CTX" in slots and not text.startswith(tuple(slots["CTX"])):
        text = rng.choice(slots["CTX"]) + " " + text
    if rng.random() < 0.1:
        text = text.rstrip(".") + ". " + rng.choice(CTX_END[lang])
    if lang != "en" and rng.random() < 0.25:
        table = rng.choice(ASCII_NO)
        text = "".join(table.get(c, c) for c in text)
    if rng.random() < 0.45:
        text = text.lower()
    if rng.random() < 0.35:
        text = text.rstrip(".!")
    if rng.random() < 0.12:
        words = text.split(" ")
        i = rng.randrange(len(words))
        w = words[i]
        vowels = [j for j, c in enumerate(w) if c in "aeiouyæøå"]
        if vowels:
            j = rng.choice(vowels)
            words[i] = w[: j + 1] + w[j] * rng.randint(2, 4) + w[j + 1 :]
            text = " ".join(words)
    if rng.random() < 0.12:
        words = text.split(" ")
        long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
        if long:
            i = rng.choice(long)
            w = words[i]
            j = rng.randrange(1, len(w) - 1)
            if rng.random() < 0.5:
                w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]  # swap two letters
            else:
                w = w[:j] + w[j + 1 :]  # drop one
            words[i] = w
            text = " ".join(words)
    if rng.random() < 0.12:
        text = text + " " + rng.choice(NOISE_EMOJI)
    return text


def trigrams(s: str) -> set:
    s = f"  {s} "
    return {s[i : i + 3] for i in range(len(s) - 2)}


def group_templates(items):
    """Union-find over templates whose base forms are near-duplicates."""
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    grams = [trigrams(it["base"]) for it in items]
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            a, b = grams[i], grams[j]
            if len(a & b) / max(1, len(a | b)) >= 0.5:
                parent[find(i)] = find(j)
    groups = {}
    for i, it in enumerate(items):
        root = find(i)
        groups.setdefault(root, []).append(i)
    for members in groups.values():
        gid = "g" + hashlib.sha256(
            "\n".join(sorted(items[m]["template"] for m in members)).encode()
        ).hexdigest()[:12]
        for m in members:
            items[m]["group"] = gid


def split_of(group: str) -> str:
    h = int(hashlib.sha256(f"{SPLIT_SALT}:{group}".encode()).hexdigest()[:8], 16)
    return "test" if h / 2**32 < TEST_SHARE else "train"


def build() -> list[dict]:
    items = []
    slots_by_lang = {}
    for lang in LANGS:
        slots, templates = parse(lang)
        slots_by_lang[lang] = slots
        for template, category, severity, kind in templates:
            items.append(
                dict(lang=lang, template=template, category=category, severity=severity,
                     kind=kind, base=base_form(template, slots))
            )
    group_templates(items)
    rows, seen = [], set()
    for it in items:
        label = "risk" if it["category"] in RISK_CATEGORIES else "none"
        rng = random.Random(f"{it['lang']}\t{it['template']}")
        want = VARIANTS[label]
        made, tries = 0, 0
        while made < want and tries < want * 6:
            tries += 1
            text = fill(it["template"], slots_by_lang[it["lang"]], rng)
            if tries > 1:  # the first variant is the template as written
                text = noise(text, it["lang"], slots_by_lang[it["lang"]], rng)
            canon = features.canonical(text)
            if not canon or canon in seen:
                continue
            seen.add(canon)
            made += 1
            rows.append(
                dict(text=text, lang=it["lang"], label=label, category=it["category"],
                     severity=it["severity"], kind=it["kind"], group=it["group"],
                     split=split_of(it["group"]))
            )
    for i, r in enumerate(rows):
        r["id"] = f"{r['lang']}-{i:05d}"
    return rows


def dump(rows) -> str:
    keys = ["id", "lang", "label", "category", "severity", "kind", "group", "split", "text"]
    return "".join(json.dumps({k: r[k] for k in keys}, ensure_ascii=False) + "\n" for r in rows)


def main():
    rows = build()
    text = dump(rows)
    if "--check" in sys.argv:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("corpus.jsonl is not what build_corpus.py makes")
        print("corpus.jsonl is up to date")
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    from collections import Counter
    c = Counter((r["lang"], r["label"], r["split"]) for r in rows)
    for k in sorted(c):
        print(k, c[k])
    print("total", len(rows), "groups", len({r["group"] for r in rows}))


if __name__ == "__main__":
    main()
