#!/usr/bin/env python3
"""Load for an OpenAI-compatible server (pocketlm serve, llama-server): concurrent clients, streaming completions.

Usage: server-load.py --url http://127.0.0.1:8080 [--clients 16] [--requests 8] [--max-tokens 64] [--pid PID]
                      [--seconds S] [--json OUT]

First every prompt once from a single client (the reference outputs, greedy), then a concurrent warm-up (every
client sends one request at once: the server reaches its concurrent working set, its batch buffers and the
KV blocks of --clients sequences, before memory is first read), then --clients threads each send --requests
streaming requests (temperature 0; with --seconds, they go on until that much time has passed).
Reports: requests completed / failed (by HTTP status), aggregate generated tokens per second over the loaded
phase, how many outputs differ from the single-client output of the same prompt, and the server's RSS (from
/proc/PID/status) after the warm-up, every 10 s of the loaded phase (rss_samples) and at the end. Standard
library only.
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse

PROMPTS = [
    "Once upon a time", "The capital of France is", "Here is a list of fruits: apple,", "The best way to learn to code is",
    "In the year 2050, cities will", "A recipe for pancakes: first,", "The three laws of motion are", "Dear diary, today I",
    "The main causes of the French Revolution were", "def fibonacci(n):", "Rain is formed when", "My favourite book is",
    "To make a paper plane,", "The ocean covers most of", "Photosynthesis is the process by which", "The history of the internet",
]


def stream(url, prompt, max_tokens, key=None):
    """One streaming completion: (status, text, completion tokens, seconds)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}, "cache_prompt": False})
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    t0 = time.time()
    conn.request("POST", "/v1/completions", body, headers)
    r = conn.getresponse()
    if r.status != 200:
        r.read()
        return r.status, "", 0, time.time() - t0
    text, chunks, usage = [], 0, None
    buf = b""
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        j = json.loads(data)
        if j.get("usage"):
            usage = j["usage"].get("completion_tokens")
        for c in j.get("choices", []):
            if c.get("text"):
                text.append(c["text"])
                chunks += 1
    conn.close()
    return 200, "".join(text), usage if usage is not None else chunks, time.time() - t0


def rss(pid):
    if not pid:
        return 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--key", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    prompts = PROMPTS[: max(1, min(len(PROMPTS), a.clients * a.requests))]

    reference = {}
    for p in prompts:  # single client: also the warm-up
        st, text, _, _ = stream(a.url, p, a.max_tokens, a.key)
        if st != 200:
            raise SystemExit(f"single-client request failed with HTTP {st}")
        reference[p] = text
    warm = [threading.Thread(target=stream, args=(a.url, prompts[c % len(prompts)], a.max_tokens, a.key))
            for c in range(a.clients)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    rss_warm = rss(a.pid)
    samples = []
    sampling = threading.Event()

    def sample():
        while not sampling.wait(10):
            samples.append(rss(a.pid))

    lock = threading.Lock()
    results = []
    deadline = time.time() + a.seconds if a.seconds > 0 else None

    def client(c):
        i = 0
        while True:
            if deadline is None and i >= a.requests:
                break
            if deadline is not None and time.time() >= deadline:
                break
            p = prompts[(c * a.requests + i) % len(prompts)]
            res = stream(a.url, p, a.max_tokens, a.key)
            with lock:
                results.append((p,) + res)
            i += 1

    t0 = time.time()
    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    sampling.set()
    sampler.join()
    rss_end = rss(a.pid)

    ok = [r for r in results if r[1] == 200]
    statuses = {}
    for r in results:
        statuses[r[1]] = statuses.get(r[1], 0) + 1
    tokens = sum(r[3] for r in ok)
    differ = sum(1 for r in ok if r[2] != reference[r[0]])
    out = {"requests": len(results), "completed": len(ok), "statuses": statuses, "tokens": tokens, "seconds": wall,
           "tokens_per_second": tokens / wall if wall > 0 else 0, "differ_from_single_client": differ,
           "rss_after_warmup": rss_warm, "rss_samples": samples, "rss_end": rss_end,
           "rss_change": (rss_end - rss_warm) / rss_warm if rss_warm else 0}
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
