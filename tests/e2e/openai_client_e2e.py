#!/usr/bin/env python3
"""The official `openai` Python client (pinned in scripts/install-deps.sh) against `pocketlm serve`.

Usage: openai_client_e2e.py POCKETLM_CLI MODEL.gguf

Starts the server on a free port, then: non-streaming and streaming chat (the same text at temperature 0),
completions with logprobs, echo scoring (the harness call: max_tokens 0, echo, logprobs), the API key, and
temperature-0 completions equal to `pocketlm run --temp 0` on the same prompt. Exit 77 (ctest: skipped)
when the openai package is missing.
"""
import math
import os
import re
import subprocess
import sys
import time

from serve_process import start_server

try:
    import openai
except ImportError:
    print("openai is not installed (scripts/install-deps.sh): skipped")
    sys.exit(77)

CLI, MODEL = sys.argv[1], sys.argv[2]
if not os.path.exists(MODEL):
    print(f"{MODEL} is missing (scripts/fetch-models.sh): skipped")
    sys.exit(77)
KEY = "e2e-key"
PROMPTS = ["The capital of France is", "Here is a list of fruits: apple,"]
N = 24


def run_cli(prompt):
    out = subprocess.run([CLI, "run", "-m", MODEL, "-p", prompt, "-n", str(N), "--temp", "0", "-c", "512", "-t", "2",
                          "--no-display-prompt"], capture_output=True, text=True, check=True)
    return out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout  # run ends its output with a newline


def main():
    server, port = start_server(CLI, MODEL, "-c", "512", "--parallel", "2", "-t", "2", "--api-key", KEY)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=120)
        failures = []

        def check(cond, what):
            print(("ok   " if cond else "FAIL ") + what)
            if not cond:
                failures.append(what)

        models = client.models.list()
        check(len(models.data) == 1, "models.list has the one model")

        msgs = [{"role": "user", "content": "Name three colors."}]
        chat = client.chat.completions.create(model="m", messages=msgs, max_tokens=N, temperature=0)
        text = chat.choices[0].message.content
        check(bool(text) and chat.usage.completion_tokens > 0, f"chat: {text!r}")
        pieces = []
        for chunk in client.chat.completions.create(model="m", messages=msgs, max_tokens=N, temperature=0, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        check(len(pieces) > 1 and "".join(pieces) == text, "streaming chat equals non-streaming at temperature 0")

        lp = client.chat.completions.create(model="m", messages=msgs, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
        content = lp.choices[0].logprobs.content
        check(len(content) == lp.usage.completion_tokens and all(len(c.top_logprobs) == 2 for c in content),
              "chat logprobs: one entry per token, two alternatives each")
        check(all(c.logprob <= 0 and c.top_logprobs[0].logprob >= c.top_logprobs[1].logprob for c in content),
              "chat logprobs are log-probabilities, most likely first")

        for prompt in PROMPTS:
            c = client.completions.create(model="m", prompt=prompt, max_tokens=N, temperature=0, logprobs=1)
            want = run_cli(prompt)
            check(c.choices[0].text == want, f"completion at temperature 0 equals `pocketlm run --temp 0`: {c.choices[0].text!r} vs {want!r}")
            check(len(c.choices[0].logprobs.token_logprobs) == c.usage.completion_tokens, "completion logprobs per token")

        # The scoring call evaluation harnesses make: echo the prompt with its logprobs, generate nothing.
        s = client.completions.create(model="m", prompt="The capital of France is Paris", max_tokens=0, echo=True, logprobs=1)
        toks = s.choices[0].logprobs.token_logprobs
        check(toks[0] is None and all(t is not None and t <= 0 for t in toks[1:]), "echo scores every prompt token")
        check(s.choices[0].text == "The capital of France is Paris", "echo returns the prompt")
        total = sum(toks[1:])
        check(math.isfinite(total), f"prompt log-likelihood {total:.3f}")

        try:
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).models.list()
            check(False, "a wrong API key is refused")
        except openai.AuthenticationError:
            check(True, "a wrong API key is refused (401)")
        try:
            client.completions.create(model="m", prompt="x " * 2000, max_tokens=1)
            check(False, "a prompt longer than the context is refused")
        except openai.BadRequestError as e:
            check("context" in str(e), "a prompt longer than the context is a 400")
        return 1 if failures else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    t0 = time.time()
    rc = main()
    print(f"{time.time() - t0:.1f} s")
    sys.exit(rc)
