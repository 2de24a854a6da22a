#!/usr/bin/env python3
"""lm-eval (PyPI lm-eval, pinned in scripts/install-deps.sh) scores a log-likelihood task through `pocketlm serve`,
offline, and its figures equal the same computation by the Python binding (docs/server.md, "lm-eval").

Usage: lm_eval_e2e.py POCKETLM_CLI MODEL.gguf STORIES.txt [--docs N] [--task-dir DIR]

The task, `pocketlm_stories_next`, is built from TinyStories (../shared/testdata/text/tinystories-val.dev.txt): the
first two sentences of a story, then four candidate third sentences (its own and those of the next three stories);
`acc` is how often the model gives its own the highest log-likelihood. It is a local JSONL file and a task YAML in a
temporary folder (or DIR, kept), loaded through `--include_path`: no hub, no dataset download. lm-eval's
`local-completions` model sends each (context, continuation) as token ids, 4 prompts per request, to
/v1/completions with echo + logprobs + max_tokens 1, and takes its tokenizer from the server's /tokenize and
/tokenizer_info (tokenizer_backend=remote): no Hugging Face tokenizer download either.

Then the Python binding (python/, over libpocketlm.so) tokenizes each pair the way lm-eval does and sums the
continuation's log-probs from one eval of the whole sequence; every log-likelihood must agree within 1e-3 (float
rounding of batched vs single-sequence products; 4e-6 seen), every greedy flag, and so `acc`. Before that, one chat
turn ended by <|im_end|> must show that token's logprob row last (lm-eval drops the last row as the generated
token's). Exit 77 (ctest: skipped) when lm-eval or a file is missing.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from serve_process import start_server

TOLERANCE = 1e-3


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli")
    ap.add_argument("model")
    ap.add_argument("stories")
    ap.add_argument("--docs", type=int, default=12, help="task examples (4 choices each)")
    ap.add_argument("--task-dir", help="write the task here and keep it (default: a temporary folder)")
    return ap.parse_args()


def sentences(story):
    parts = re.split(r"(?<=[.!?])\s+", " ".join(story.split()))
    return [p for p in parts if p]


def build_task(stories_path, n_docs, out_dir):
    """The JSONL dataset and the task YAML; returns the task's name."""
    with open(stories_path, encoding="utf-8") as f:
        stories = [sentences(s) for s in f.read().split("\n\n")]
    stories = [s for s in stories if len(s) >= 3 and all(len(x) < 200 for x in s[:3])][: n_docs + 3]
    if len(stories) < n_docs + 3:
        sys.exit(f"{stories_path}: fewer than {n_docs + 3} usable stories")
    data = os.path.join(out_dir, "stories_next.jsonl")
    with open(data, "w", encoding="utf-8") as f:
        for k in range(n_docs):
            gold = k % 4
            others = [stories[k + j][2] for j in (1, 2, 3)]
            choices = others[:gold] + [stories[k][2]] + others[gold:]
            f.write(json.dumps({"context": " ".join(stories[k][:2]), "choices": choices, "label": gold}) + "\n")
    name = "pocketlm_stories_next"
    with open(os.path.join(out_dir, name + ".yaml"), "w", encoding="utf-8") as f:
        f.write(f"""# Which of four sentences comes next in a TinyStories story (built by tests/e2e/lm_eval_e2e.py).
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: label
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""")
    return name


def check_end_row(port):
    """A reply ended by the end-of-generation token (<|im_end|> after a chat turn) has that token's logprob row
    last (its text is not in "text"): a scorer asking for max_tokens 1 always gets the one row it slices off."""
    import urllib.request
    prompt = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
              "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n")
    body = json.dumps({"prompt": prompt, "max_tokens": 64, "temperature": 0, "logprobs": 1}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"Content-Type": "application/json"})
    c = json.load(urllib.request.urlopen(req, timeout=120))
    choice, lp = c["choices"][0], c["choices"][0]["logprobs"]
    if choice["finish_reason"] != "stop":
        return [f"the chat turn did not end with <|im_end|> in 64 tokens: {choice['text']!r}"]
    errors = []
    if len(lp["tokens"]) != c["usage"]["completion_tokens"] + 1 or lp["tokens"][-1] != "<|im_end|>":
        errors.append(f"end-of-generation row missing: {lp['tokens'][-3:]} for {c['usage']['completion_tokens']} tokens")
    if "<|im_end|>" in choice["text"] or not lp["token_logprobs"][-1] <= 0:
        errors.append(f"end row wrong: text {choice['text']!r}, logprob {lp['token_logprobs'][-1]}")
    return errors


def reference(model, pairs):
    """(log-likelihood, is_greedy) of each (context, continuation) by the binding, split into tokens as lm-eval's
    TemplateLM._encode_pair does (trailing spaces of the context move to the continuation; the continuation's
    tokens are those of the whole text after the context's)."""
    import numpy as np
    out = []
    for context, continuation in pairs:
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        tok = lambda s: model.tokenize(s, add_special=False, parse_special=True)  # noqa: E731
        whole, ctx = tok(context + continuation), tok(context)
        ids = np.concatenate([ctx, whole[len(ctx):]])
        lp = model.logprobs(ids)
        pos = np.arange(len(ctx) - 1, len(ids) - 1)  # row i predicts ids[i + 1]
        ll = float(lp[pos, ids[pos + 1]].astype(np.float64).sum())
        greedy = bool((lp[pos].argmax(axis=1) == ids[pos + 1]).all())
        out.append((ll, greedy))
    return out


def main():
    args = parse_args()
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        print("lm-eval is not installed (scripts/install-deps.sh): skipped")
        sys.exit(77)
    for path in (args.model, args.stories):
        if not os.path.exists(path):
            print(f"{path} is missing: skipped")
            sys.exit(77)
    # Offline: nothing from a hub, caches in a throwaway folder.
    tmp = tempfile.TemporaryDirectory()
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=os.path.join(tmp.name, "hf"),
                      TOKENIZERS_PARALLELISM="false")
    task_dir = args.task_dir or os.path.join(tmp.name, "task")
    os.makedirs(task_dir, exist_ok=True)
    task = build_task(args.stories, args.docs, task_dir)

    server, port = start_server(args.cli, args.model, "-c", "512", "--parallel", "4", "-t", "2")
    failures = []
    try:
        failures += check_end_row(port)
        t0 = time.time()
        results = lm_eval.simple_evaluate(
            model="local-completions",
            model_args={"model": "smollm2", "base_url": f"http://127.0.0.1:{port}/v1/completions",
                        "tokenizer_backend": "remote", "num_concurrent": 1, "max_retries": 1, "max_length": 512},
            tasks=[task], batch_size=4, task_manager=TaskManager(include_path=task_dir),
            log_samples=True, bootstrap_iters=0, random_seed=0)
        t_eval = time.time() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    acc = results["results"][task]["acc,none"]
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    pairs, got = [], []
    for s in samples:
        for arg, resp in zip(s["arguments"], s["resps"]):
            pairs.append(tuple(arg.values()) if isinstance(arg, dict) else tuple(arg))
            got.append(tuple(resp[0]))

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import pocketlm
    t0 = time.time()
    with pocketlm.Model(args.model, n_ctx=512, n_threads=2) as m:
        want = reference(m, pairs)
    t_ref = time.time() - t0

    worst = 0.0
    for (ctx, cont), (ll, greedy), (ref_ll, ref_greedy) in zip(pairs, got, want):
        worst = max(worst, abs(ll - ref_ll))
        if abs(ll - ref_ll) > TOLERANCE or bool(greedy) != ref_greedy:
            failures.append(f"{cont!r}: lm-eval {ll:.5f} {greedy}, binding {ref_ll:.5f} {ref_greedy}")
    ref_acc, i = 0, 0
    for s in samples:  # acc as lm-eval computes it: the gold choice has the highest log-likelihood
        lls = [want[i + c][0] for c in range(len(s["arguments"]))]
        ref_acc += int(max(range(len(lls)), key=lls.__getitem__) == int(s["target"]))
        i += len(lls)
    ref_acc /= len(samples)
    print(f"lm-eval local-completions on {task}: {len(samples)} docs, {len(pairs)} requests, acc {acc:.4f} "
          f"({t_eval:.1f} s); the binding: acc {ref_acc:.4f} ({t_ref:.1f} s); "
          f"largest log-likelihood difference {worst:.2e}; sum of log-likelihoods lm-eval {sum(g[0] for g in got):.4f}, "
          f"binding {sum(w[0] for w in want):.4f}")
    if len(pairs) != 4 * args.docs:
        failures.append(f"{len(pairs)} requests, expected {4 * args.docs}")
    if abs(acc - ref_acc) > 1e-9:
        failures.append(f"acc {acc} != the binding's {ref_acc}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
