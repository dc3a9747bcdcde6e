"""Trains the on-device risk detector from corpus.jsonl and writes what the client core
embeds: weights.bin (idf and quantised linear heads), fixtures.json (probe strings with their
tokens, features and integer scores) and heldout_scores.jsonl (the scores of every held-out
message), plus metrics.json.

Reproducible: fixed seed, deterministic solver (liblinear); the exported scores are computed
here exactly as the Rust inference computes them (same operations in the same order on the
same f32-rounded constants, then rounded to integers), so every platform agrees.

Splits: `train` fits the heads; `dev` (written apart from the training data) chooses the
regularisation and the risk threshold and is where errors are read; `test` (written apart
from both, sealed) is only scored, for the acceptance figure in tests/detector_heldout.rs.

    python3 -m venv /tmp/detvenv && /tmp/detvenv/bin/pip install numpy scipy scikit-learn
    cd mls/detector && /tmp/detvenv/bin/python train.py [--dev-errors]

Model: n-gram counts (features.py) -> per block sublinear tf (1 + ln count) x idf, L2-
normalised -> 7 logistic-regression heads:
  risk        risk vs none (all train rows)
  ideation, plan, meds, selfharm   one-vs-rest per risk category (all train rows)
  imminent    imminent vs everything else (all train rows, balanced)
  urgent      urgent vs concerning (non-imminent risk rows, balanced)
Decision (mirrored in mls/src/detector.rs):
  flagged   = risk >= risk threshold (chosen on dev: recall >= TARGET_DEV_RECALL)
  category  = argmax(ideation, plan, meds, selfharm), first on ties
  severity  = imminent if imminent >= 0 and the text names a plan, means or time
              (features.gate); else urgent if urgent >= 0; else concerning
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

import features

HERE = os.path.dirname(os.path.abspath(__file__))
HEADS = ["risk", "ideation", "plan", "meds", "selfharm", "imminent", "urgent"]
CATEGORY_HEADS = {"ideation": "suicidal_ideation", "plan": "goodbye_plan_means",
                  "meds": "medication_refusal", "selfharm": "self_harm"}
# The risk threshold is the one at which the dev split's recall reaches this. Set to 0.98 at
# stop 30, before the second test split was written: on both earlier scorings held-out
# recall fell about 0.03-0.045 below dev recall (0.974 -> 0.929, 0.971 -> 0.941; other
# writers write differently), and a missed risk message costs more than a false suggestion.
TARGET_DEV_RECALL = 0.98
SEED = 17
C_GRID = [4.0, 16.0, 32.0]
MIN_DF = 2  # buckets seen in fewer training messages are left out of the model
TF_MAX = 64  # counts above this weigh as this
BUCKETS = 2 << features.NGRAM_BITS


def load():
    with open(os.path.join(HERE, "corpus.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def f32(x):
    return np.float64(np.float32(x))


TF = [f32(1.0 + math.log(c)) for c in range(1, TF_MAX + 1)]


def counts(rows):
    indptr, indices, data = [0], [], []
    for r in rows:
        for b, c in features.features(r["text"]):
            indices.append(b)
            data.append(min(c, TF_MAX))
        indptr.append(len(indices))
    return csr_matrix((np.array(data, dtype=np.float64), indices, indptr),
                      shape=(len(rows), BUCKETS))


def tfidf(C, idf):
    """Training-time transform (vectorised; the exported scores use `Model.logits`)."""
    X = C.copy()
    X.data = np.array([TF[int(c) - 1] for c in X.data])
    X = X.multiply(idf.reshape(1, -1)).tocsr()
    half = 1 << features.NGRAM_BITS
    block = (X.indices >= half).astype(np.int64)
    sq = np.zeros((X.shape[0], 2))
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    np.add.at(sq, (rows, block), X.data ** 2)
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    X.data = X.data / norms[rows, block]
    return X


def fit(X, y, C, class_weight=None):
    m = LogisticRegression(C=C, solver="liblinear", class_weight=class_weight,
                           random_state=SEED, max_iter=1000)
    m.fit(X, y)
    return m


def threshold_for_recall(scores, y, target):
    """The highest threshold whose recall on (scores, y) is >= target."""
    pos = np.sort(scores[y == 1])
    k = int(np.floor((1 - target) * len(pos)))
    return float(pos[k])


def prf(pred, y):
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    return dict(tp=tp, fp=fp, fn=fn, tn=int(len(y) - tp - fp - fn),
                precision=tp / max(1, tp + fp), recall=tp / max(1, tp + fn))


def round_half_away(x: float) -> int:
    """Rust's f64::round (the fraction is exact: Sterbenz)."""
    a = abs(x)
    n = math.floor(a)
    return int(math.copysign(n + (1 if a - n >= 0.5 else 0), x))


WINDOW, OVERLAP, SPAN = 1000, 200, 3
TERMINATORS = ".!?\n"
SEVERITY_RANK = {"imminent": 0, "urgent": 1, "concerning": 2}


def sentence_ends(text):
    ends = []
    for i, c in enumerate(text):
        if c in TERMINATORS and not (i + 1 < len(text) and text[i + 1] in TERMINATORS):
            ends.append(i + 1)
    if text and (not ends or ends[-1] != len(text)):
        ends.append(len(text))
    return ends


def slices(text):
    n = len(text)
    step = WINDOW - OVERLAP
    count = 1 if n <= WINDOW else -(-(n - OVERLAP) // step)
    return [text[k * step:min(k * step + WINDOW, n)] for k in range(count)]


def windows(text):
    """What the Rust detector reads `text` as (mls/src/detector.rs `windows`)."""
    ends = sentence_ends(text)
    if len(ends) <= SPAN:
        return slices(text)
    out = [text] if len(text) <= WINDOW else []
    begin = [0] + ends
    for k in range(0, len(ends) - SPAN + 1, 2):
        span = text[begin[k]:ends[k + SPAN - 1]]
        if len(span) <= WINDOW:
            out.append(span)
    for k in range(len(ends)):
        out.extend(slices(text[begin[k]:ends[k]]))
    return out


class Model:
    """The integer model exactly as mls/src/detector/model.rs runs it."""

    def __init__(self, buckets, idf, W, biases, thresholds, scale):
        self.index = {int(b): i for i, b in enumerate(buckets)}
        self.idf = [f32(v) for v in idf]
        self.W = [[float(W[h, i]) for h in range(len(HEADS))] for i in range(len(buckets))]
        self.b = biases
        self.t = thresholds
        self.scale = scale

    def logits(self, text):
        half = 1 << features.NGRAM_BITS
        total = [0.0] * len(HEADS)
        feats = features.features(text)
        for block in (0, 1):
            dots = [0.0] * len(HEADS)
            sumsq = 0.0
            for b, c in feats:
                if (b >= half) != (block == 1):
                    continue
                i = self.index.get(b)
                if i is None:
                    continue
                v = TF[min(c, TF_MAX) - 1] * self.idf[i]
                sumsq += v * v
                w = self.W[i]
                for h in range(len(HEADS)):
                    dots[h] += v * w[h]
            if sumsq > 0.0:
                norm = math.sqrt(sumsq)
                for h in range(len(HEADS)):
                    total[h] += dots[h] / norm
        return [self.b[h] + round_half_away(total[h]) for h in range(len(HEADS))]

    def scores(self, text):
        """The window with the highest risk score (the last of equals), as `scores`."""
        best = None
        for w in windows(text):
            lg = self.logits(w)
            if best is None or lg[0] >= best[0]:
                best = lg
        return best

    def decide_window(self, text):
        lg = self.logits(text)
        s = dict(zip(HEADS, lg))
        if s["risk"] < self.t["risk"]:
            return None
        cats = ["ideation", "plan", "meds", "selfharm"]
        cat = max(cats, key=lambda c: (s[c], -cats.index(c)))
        if s["imminent"] >= self.t["imminent"] and features.gate(text):
            sev = "imminent"
        elif s["urgent"] >= self.t["urgent"]:
            sev = "urgent"
        else:
            sev = "concerning"
        return dict(category=CATEGORY_HEADS[cat], severity=sev), lg[0]

    def decide(self, text):
        """The most severe window's suggestion (the first of equals), as `assess`."""
        best = None
        for w in windows(text):
            d = self.decide_window(w)
            if d and (best is None or (SEVERITY_RANK[d[0]["severity"]], -d[1])
                      < (SEVERITY_RANK[best[0]["severity"]], -best[1])):
                best = d
        return best[0] if best else None


def write_weights(path, buckets, idf, W, biases, thresholds, scale):
    with open(path, "wb") as f:
        f.write(b"PBD2")
        f.write(struct.pack("<BBHHI", features.NGRAM_BITS, len(HEADS), scale, TF_MAX,
                            len(buckets)))
        for h, name in enumerate(HEADS):
            f.write(struct.pack("<ii", biases[h], thresholds[name]))
        f.write(struct.pack("<" + "f" * TF_MAX, *TF))
        for i, b in enumerate(buckets):
            f.write(struct.pack("<If", int(b), float(idf[i])))
            f.write(struct.pack("<" + "h" * len(HEADS), *[int(W[h, i]) for h in range(len(HEADS))]))


PROBES = [
    "", "   ", "...", "ÆØÅæøå", "🙂🙃", "a'b’c`d", "Æ klare ikkje meir",
    "i wanna kil my self", "Jeg dør av latter 😂", "Har fylt dosetten for neste uke",
    "Etter jobb tar jeg livet mitt", "Self-harmed again last night", "I'm dying to see you",
    "Jeg vil bare dø", "Eg vil berre døy", "I was diagnosed last spring and now I want to die",
    "Ingen svarer meg og jeg vil dø", "This deadline is killing me", "Selvmord er tabu",
    "I gave away my cat and wrote letters to my family. Tonight I'm done",
    "Jeg har sluttet på medisinene, la viruset vinne", "Eg har skadd meg sjølv igjen",
    "SOOOO tired 😭😭😭 💊🪦", "Ünïcödé façade naïve Straße", "kl 23:30 i kveld",
    "İstanbul ǅ ﬁ ẞ", "\u0000\u202eabc", "🏳️‍🌈 👍🏽 ❤️", "ha ha ha ha ha ha ha ha",
    "Vi snakket om jobben. Og om været. Og om ferien. Jeg vil ikke leve lenger. Og om katten.",
    "Takk for i dag! Det var fint. Vi ses på torsdag. Ha en fin kveld!",
]


def evaluate(model, rs):
    per = {}
    for r in rs:
        d = model.decide(r["text"])
        for key in ("all", r["lang"]):
            c = per.setdefault(key, dict(tp=0, fp=0, fn=0, tn=0, sev_ok=0, cat_ok=0,
                                         imminent_fp=0))
            risk = r["label"] == "risk"
            if risk and d:
                c["tp"] += 1
                c["sev_ok"] += d["severity"] == r["severity"]
                c["cat_ok"] += d["category"] == r["category"]
            elif d:
                c["fp"] += 1
            elif risk:
                c["fn"] += 1
            else:
                c["tn"] += 1
            if d and d["severity"] == "imminent" and r["severity"] != "imminent":
                c["imminent_fp"] += 1
    for c in per.values():
        c["precision"] = round(c["tp"] / max(1, c["tp"] + c["fp"]), 4)
        c["recall"] = round(c["tp"] / max(1, c["tp"] + c["fn"]), 4)
    return per


def main():
    rows = load()
    train = [r for r in rows if r["split"] == "train"]
    dev = [r for r in rows if r["split"] == "dev"]
    test = [r for r in rows if r["split"] == "test"]
    Ctr = counts(train)
    df = np.bincount(Ctr.indices, minlength=BUCKETS)
    n = len(train)
    idf = np.where(df >= MIN_DF, np.log((1 + n) / (1 + df)) + 1, 0.0).astype(np.float32)
    idf = idf.astype(np.float64)
    Xtr = tfidf(Ctr, idf)
    Xdv = tfidf(counts(dev), idf)
    y = {
        "risk": np.array([r["label"] == "risk" for r in train], dtype=int),
        **{h: np.array([r["category"] == c for r in train], dtype=int)
           for h, c in CATEGORY_HEADS.items()},
        "imminent": np.array([r["severity"] == "imminent" for r in train], dtype=int),
        "urgent": np.array([r["severity"] == "urgent" for r in train], dtype=int),
    }
    ydv = np.array([r["label"] == "risk" for r in dev], dtype=int)
    best = None
    for C in C_GRID:
        s = fit(Xtr, y["risk"], C).decision_function(Xdv)
        thr = threshold_for_recall(s, ydv, TARGET_DEV_RECALL)
        r = prf(s >= thr, ydv)
        print(f"dev C={C}: recall {r['recall']:.3f} precision {r['precision']:.3f}", flush=True)
        if best is None or r["precision"] > best[0]["precision"]:
            best = (r, C, thr)
    _, C, thr = best
    print(f"chosen C={C}, dev threshold {thr:.4f}")
    is_risk = y["risk"] == 1
    not_imminent = is_risk & (y["imminent"] == 0)
    coefs, intercepts = [], []
    for h in HEADS:
        if h in ("risk", *CATEGORY_HEADS):
            m = fit(Xtr, y[h], C)
        elif h == "imminent":
            m = fit(Xtr, y[h], C, "balanced")
        else:
            m = fit(Xtr[not_imminent], y[h][not_imminent], C, "balanced")
        coefs.append(m.coef_[0])
        intercepts.append(m.intercept_[0])
    coefs = np.stack(coefs)
    buckets = np.nonzero(idf > 0)[0]
    scale = int(min(1024, 32767 // max(1e-9, float(np.abs(coefs[:, buckets]).max()))))
    W = np.clip(np.round(coefs[:, buckets] * scale), -32767, 32767).astype(np.int64)
    biases = [int(np.round(b * scale)) for b in intercepts]
    thresholds = {h: 0 for h in HEADS}
    thresholds["risk"] = int(np.round(thr * scale))
    model = Model(buckets, idf[buckets], W, biases, thresholds, scale)
    write_weights(os.path.join(HERE, "weights.bin"), buckets, idf[buckets], W, biases,
                  thresholds, scale)
    size = os.path.getsize(os.path.join(HERE, "weights.bin"))
    print(f"weights.bin: {len(buckets)} buckets, scale {scale}, {size} bytes")

    metrics = dict(
        choice=dict(C=C, threshold=thr, target_dev_recall=TARGET_DEV_RECALL, scale=scale),
        dev=evaluate(model, dev),
        buckets=len(buckets), weights_bytes=size, train_rows=len(train), dev_rows=len(dev),
        test_rows=len(test),
    )
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(metrics, indent=1))
    if "--dev-errors" in sys.argv:
        for r in dev:
            d = model.decide(r["text"])
            if bool(d) != (r["label"] == "risk"):
                print("DEV", "FN" if not d else "FP", r["lang"], r["kind"], r["text"])

    fixtures = []
    for t in PROBES + [r["text"] for r in train[::97]] + [r["text"] for r in dev[::7]]:
        fixtures.append(dict(text=t, tokens=features.normalise(t),
                             rules=features.rules(features.normalise(t)),
                             features=[list(p) for p in features.features(t)],
                             logits=model.scores(t), decision=model.decide(t)))
    with open(os.path.join(HERE, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, ensure_ascii=False, indent=0)
        f.write("\n")
    with open(os.path.join(HERE, "heldout_scores.jsonl"), "w", encoding="utf-8") as f:
        for r in test:
            f.write(json.dumps(dict(id=r["id"], logits=model.scores(r["text"]),
                                    decision=model.decide(r["text"])),
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
