"""Expands the hand-written templates in corpus_src/ into corpus.jsonl.

Deterministic (seeded by the template text), so running it again reproduces the committed
file byte for byte; `python3 build_corpus.py --check` verifies that.

- Each template line is expanded into a few variants: alternatives and slots filled, then
  chat noise applied with fixed probabilities that are the same for risk and safe messages
  (lower case, Norwegian letters typed as ae/oe/aa or a/o, missing final punctuation, a
  stretched vowel, one typo, an everyday emoji, a neutral opening line).
- Near-duplicate templates (character-trigram Jaccard >= 0.5 between their canonical base
  forms, across languages too, e.g. a bokmål sentence and its nynorsk translation) form one
  group: cross-validation folds never split a group.
- Evaluation data is written apart from the training templates, by other authors who never
  saw them (see MODEL_CARD.md): `heldout_src/` is the sealed `test` split (scored for the
  acceptance figure only), `dev_src/` the `dev` split (threshold choice and error
  analysis). Each line is one message, kept exactly as written (no variants, no noise).
- Nothing near a test or dev message is trained on: a training template within Jaccard 0.5
  of one is dropped (and counted), and so is a dev message near a test message; variants
  whose normalised text (features.canonical) duplicates an earlier message are dropped, so
  no evaluation text equals a training text after normalisation.
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
EVAL_SRC = {"test": os.path.join(HERE, "heldout_src"), "dev": os.path.join(HERE, "dev_src")}
OUT = os.path.join(HERE, "corpus.jsonl")
LANGS = ("nb", "nn", "en")
NEAR = 0.5
# Variants per template: fewer for risk templates, so the corpus is about 35/65.
VARIANTS = {"risk": 4, "none": 7}
NOISE_EMOJI = ["🙂", "😅", "🙏", "❤️", "😕", "😔", "😊", "👍"]
CTX_END = {
    "nb": ["Beklager at jeg maser.", "Takk for at du leser.", "Vi snakkes.", "Bare så du vet det."],
    "nn": ["Orsak at eg masar.", "Takk for at du les.", "Vi snakkast.", "Berre så du veit det."],
    "en": ["Sorry for rambling.", "Thanks for reading.", "Talk soon.", "Just so you know."],
}
RISK_CATEGORIES = {"suicidal_ideation", "goodbye_plan_means", "medication_refusal", "self_harm"}


def sources(folder: str, lang: str) -> list[str]:
    """`<lang>.txt` then `<lang>_*.txt`, in name order."""
    names = sorted(n for n in os.listdir(folder)
                   if n == f"{lang}.txt" or (n.startswith(f"{lang}_") and n.endswith(".txt")))
    return [os.path.join(folder, n) for n in names]


def parse(path: str):
    """Slots (per file) and (template, category, severity, kind) in file order."""
    slots, templates = {}, []
    section = None
    lang = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
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
                    raise ValueError(f"{lang}:{lineno}: template before a section")
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


def near_pairs(a_grams: list, b_grams: list, same: bool):
    """Index pairs (i, j) with Jaccard(a[i], b[j]) >= NEAR, through an inverted index."""
    index = {}
    for j, g in enumerate(b_grams):
        for t in g:
            index.setdefault(t, []).append(j)
    for i, g in enumerate(a_grams):
        shared = {}
        for t in g:
            for j in index.get(t, ()):
                shared[j] = shared.get(j, 0) + 1
        for j, n in shared.items():
            if same and j <= i:
                continue
            if n / max(1, len(g) + len(b_grams[j]) - n) >= NEAR:
                yield i, j


def group_templates(items):
    """Union-find over templates whose base forms are near-duplicates."""
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    grams = [trigrams(it["base"]) for it in items]
    for i, j in near_pairs(grams, grams, same=True):
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


def evaluation_items():
    """The test and dev messages, as written; dev messages near a test message dropped."""
    out = {}
    for split in ("test", "dev"):
        out[split] = []
        for lang in LANGS:
            for path in sources(EVAL_SRC[split], lang):
                _, templates = parse(path)
                for text, category, severity, kind in templates:
                    out[split].append(dict(lang=lang, template=text, category=category,
                                           severity=severity, kind=kind,
                                           base=features.canonical(text)))
    test_grams = [trigrams(it["base"]) for it in out["test"]]
    dev_grams = [trigrams(it["base"]) for it in out["dev"]]
    near_test = {i for i, _ in near_pairs(dev_grams, test_grams, same=False)}
    dropped = len(near_test)
    out["dev"] = [it for i, it in enumerate(out["dev"]) if i not in near_test]
    return out, dropped


def build() -> tuple[list[dict], dict]:
    evaluation, dev_dropped = evaluation_items()
    eval_grams = [trigrams(it["base"]) for it in evaluation["test"] + evaluation["dev"]]
    items = []
    slots_by_file = {}
    for lang in LANGS:
        for path in sources(SRC, lang):
            slots, templates = parse(path)
            slots_by_file[path] = slots
            for template, category, severity, kind in templates:
                items.append(
                    dict(lang=lang, template=template, category=category, severity=severity,
                         kind=kind, base=base_form(template, slots), file=path)
                )
    near_eval = {i for i, _ in near_pairs([trigrams(it["base"]) for it in items], eval_grams,
                                          same=False)}
    stats = dict(train_templates=len(items), train_dropped_near_eval=len(near_eval),
                 dev_dropped_near_test=dev_dropped)
    items = [it for i, it in enumerate(items) if i not in near_eval]
    group_templates(items)
    rows, seen = [], set()
    # Evaluation messages first, so a training variant equal to one is the one dropped.
    for split in ("test", "dev"):
        for n, it in enumerate(evaluation[split]):
            canon = features.canonical(it["template"])
            if not canon or canon in seen:
                continue
            seen.add(canon)
            rows.append(
                dict(text=it["template"], lang=it["lang"],
                     label="risk" if it["category"] in RISK_CATEGORIES else "none",
                     category=it["category"], severity=it["severity"], kind=it["kind"],
                     group=f"{split}-{it['lang']}-{n:04d}", split=split)
            )
    for it in items:
        label = "risk" if it["category"] in RISK_CATEGORIES else "none"
        rng = random.Random(f"{it['lang']}\t{it['template']}")
        slots = slots_by_file[it["file"]]
        want = VARIANTS[label]
        made, tries = 0, 0
        while made < want and tries < want * 6:
            tries += 1
            text = fill(it["template"], slots, rng)
            if tries > 1:  # the first variant is the template as written
                text = noise(text, it["lang"], slots, rng)
            canon = features.canonical(text)
            if not canon or canon in seen:
                continue
            seen.add(canon)
            made += 1
            rows.append(
                dict(text=text, lang=it["lang"], label=label, category=it["category"],
                     severity=it["severity"], kind=it["kind"], group=it["group"],
                     split="train")
            )
    # A variant can drift near an evaluation message even when its template did not.
    train_at = [i for i, r in enumerate(rows) if r["split"] == "train"]
    near = {train_at[i] for i, _ in near_pairs(
        [trigrams(features.canonical(rows[i]["text"])) for i in train_at], eval_grams,
        same=False)}
    stats["train_variants_dropped_near_eval"] = len(near)
    rows = [r for i, r in enumerate(rows) if i not in near]
    for i, r in enumerate(rows):
        r["id"] = f"{r['lang']}-{i:05d}"
    return rows, stats


def dump(rows) -> str:
    keys = ["id", "lang", "label", "category", "severity", "kind", "group", "split", "text"]
    return "".join(json.dumps({k: r[k] for k in keys}, ensure_ascii=False) + "\n" for r in rows)


def main():
    rows, stats = build()
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
    print("total", len(rows), "groups", len({r["group"] for r in rows}), stats)


if __name__ == "__main__":
    main()
