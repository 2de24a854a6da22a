#!/usr/bin/env python3
"""Writes tests/data/metrics/vectors.json: ROUGE, chrF and BLEU scores of a fixed set of strings as the
reference packages compute them (rouge-score, sacrebleu; scripts/install-deps.sh installs both). The C++ test
tests/eval/metrics_test.cpp recomputes every value and asks for agreement to 1e-6.

B-Norm BLEU (commit messages) has no PyPI package: its reference is the script B-Norm.py of
github.com/DeepSoftwareAnalytics/CommitMsgEmpirical (metrics/B-Norm.py). Pass its path with --b-norm to
(re)compute those values; without it the B-Norm values already in the file are kept.

Usage: python3 scripts/gen-metric-vectors.py [--b-norm PATH/B-Norm.py] [-o tests/data/metrics/vectors.json]
"""
import argparse
import importlib.util
import json
import os

import rouge_score
import sacrebleu
from rouge_score import rouge_scorer

# (hypothesis, references): unicode, punctuation, empty hypothesis, several references, repeated n-grams,
# numbers with separators, HTML entities, whitespace of every kind.
CASES = [
    ("The cat sat on the mat.", ["The cat is sitting on the mat."]),
    ("the the the the the the the", ["The cat is on the mat.", "There is a cat on the mat."]),
    ("", ["A reference that the empty hypothesis misses."]),
    ("Only a hypothesis here", [""]),
    ("", [""]),
    ("Le chat est assis sur le tapis.", ["Le chat s'est assis sur le tapis.", "Un chat est assis sur le tapis."]),
    ("Des membres de l’Assemblée du pays de Galles inquiets", ["Des membres de l’Assemblée du pays de Galles inquiets de « passer pour des marionnettes »"]),
    ("Größere Straßen führen über die Brücke – schön!", ["Die größeren Straßen führen über die Brücke; sehr schön."]),
    ("¿Dónde está la estación? ¡Aquí!", ["¿Dónde está la estación de tren?", "¿Dónde queda la estación?"]),
    ("ΣΟΦΊΑ και ΟΔΟΣ", ["σοφία και οδός"]),
    ("İstanbul KELVIN \u212a", ["istanbul kelvin k"]),
    ("日本語のテキスト、句読点。", ["日本語のテキストと句読点。"]),
    ("emoji 🙂🙂 and  tabs\tand\u00a0nbsp\u3000ideographic", ["emoji 🙂 and tabs and nbsp ideographic"]),
    ("Prices rose 3.5% to $1,234.56 on 2019-10-01, e.g. in U.S.A.", ["Prices rose by 3.5 % to $ 1,234.56 on 2019-10-01 , e.g. in the U.S.A."]),
    ("a &amp; b &lt;tag&gt; &quot;quoted&quot; <skipped> end-\nof line", ["a & b <tag> \"quoted\" endof line"]),
    ("x. y, z.. w,, 5.5 6,6 7-8 a-b (c) [d] {e} 'f' \"g\"", ["x . y , z w 5.5 6,6 7 - 8 a-b ( c ) [ d ] { e } ' f ' \" g \""]),
    ("fix snapshot version", ["Fix snapshot version "]),
    ("Fix NPE in FooBar.baz() when the list is empty", ["fix npe in foobar . baz ( ) when list is empty", "Fix null pointer exception"]),
    ("update changelog for 2 . 1 . 1 release", ["Update CHANGELOG . md for release 2 . 1 . 1"]),
    ("add add add add tests tests", ["add tests", "add more tests for the parser"]),
    ("under_score snake_case and CamelCase", ["under score snake_case and camel case"]),
    ("  leading and trailing spaces  \n", ["leading and trailing spaces"]),
    ("A B C D E F G H", ["A B C D E F G H"]),
    ("A B C D", ["A B C D E F G H I J K L"]),
    ("one", ["one two three", "one two", "one"]),
    ("#Person1# asks #Person2# about the weather; #Person2# says it's raining.",
     ["#Person2# tells #Person1# that it is raining.", "#Person1# and #Person2# talk about the rain.",
      "The weather is rainy, #Person2# says."]),
    ("Ms. Dawson helps #Person1# to write a memo to inform every employee that they have to change the communication method and should not use Instant Messaging anymore.",
     ["Ms. Dawson helps #Person1# to write a memo to inform every employee that they have to change the communication method and should not use Instant Messaging anymore.",
      "In order to prevent employees from wasting time on Instant Message programs, #Person1# decides to terminate the use of those programs and asks Ms. Dawson to send out a memo to all employees by the afternoon."]),
]


def load_bnorm(path):
    spec = importlib.util.spec_from_file_location("b_norm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    def score(hyp, refs):
        # As the script's computeMaps/bleuFromMaps: strip, lowercase, splitPuncts; bleu()[0] x 100.
        r = [mod.splitPuncts(x.strip().lower()) for x in refs]
        h = mod.splitPuncts(hyp.strip().lower())
        return mod.bleu(r, h)[0] * 100.0
    return score


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("-o", default=os.path.join(here, "..", "tests", "data", "metrics", "vectors.json"))
    ap.add_argument("--b-norm", default=None, help="path to CommitMsgEmpirical's metrics/B-Norm.py")
    args = ap.parse_args()

    old = {}
    if os.path.exists(args.o):
        with open(args.o, encoding="utf-8") as f:
            for c in json.load(f)["sentences"]:
                old[(c["hypothesis"], tuple(c["references"]))] = c.get("b_norm")
    bnorm = load_bnorm(args.b_norm) if args.b_norm else None

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    sentences = []
    for hyp, refs in CASES:
        r = scorer.score_multi(refs, hyp)
        c = {"hypothesis": hyp, "references": refs}
        for k in ("rouge1", "rouge2", "rougeL"):
            c[k] = {"precision": r[k].precision, "recall": r[k].recall, "fmeasure": r[k].fmeasure}
        c["chrf"] = sacrebleu.sentence_chrf(hyp, refs).score
        c["bleu"] = sacrebleu.sentence_bleu(hyp, refs).score
        c["tokenize_13a"] = [sacrebleu.BLEU().tokenizer(x.rstrip()) for x in [hyp] + refs]
        c["b_norm"] = bnorm(hyp, refs) if bnorm else old.get((hyp, tuple(refs)))
        sentences.append(c)

    # Corpus level: every case with the same number of references would be needed by sacrebleu's stream
    # API, so the corpus is the cases padded with None (sacrebleu's variable-reference convention).
    hyps = [h for h, _ in CASES]
    n_refs = max(len(r) for _, r in CASES)
    streams = [[r[i] if i < len(r) else None for _, r in CASES] for i in range(n_refs)]
    corpus = {
        "chrf": sacrebleu.corpus_chrf(hyps, streams).score,
        "bleu": sacrebleu.corpus_bleu(hyps, streams).score,
    }
    out = {
        "generator": "scripts/gen-metric-vectors.py",
        "packages": {"sacrebleu": sacrebleu.__version__, "rouge-score": getattr(rouge_score, "__version__", "0.1.2"),
                     "b_norm": "CommitMsgEmpirical metrics/B-Norm.py" if (bnorm or any(v is not None for v in old.values())) else None},
        "sentences": sentences,
        "corpus": corpus,
    }
    os.makedirs(os.path.dirname(args.o), exist_ok=True)
    with open(args.o, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.o}: {len(sentences)} sentences")


if __name__ == "__main__":
    main()
