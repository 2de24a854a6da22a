#!/usr/bin/env python3
"""pocketlm tune's report.html in headless Chromium (issue 19).

Usage: tune_report_e2e.py POCKETLM_CLI STORIES260K.gguf TASKS_DIR SCREENSHOT.png

Runs a small tune on stories260K (two targets x two KV types, 6 translation examples), opens DIR/report.html in
headless Chromium (`--dump-dom`: the page as the browser parsed it; `--screenshot`: the picture) and checks that
the Pareto plot (an <svg> with one marker per evaluated candidate and the pick), the KLD view, the candidates
table (one row per candidate) and the pick section are there, and that the page fetched nothing (no http(s)
URL). The screenshot is saved for a person to look at. Exit 77 (ctest: skipped) without chromium or the model.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

CLI, MODEL, TASKS, SHOT = sys.argv[1:5]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if not CHROMIUM or not os.path.exists(MODEL):
    print("chromium or the model is missing: skipped")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="tune-report-")
try:
    space = os.path.join(tmp, "space.yaml")
    with open(space, "w") as f:
        f.write("targets: [Q8_0, q4_0]\nmethods: [rtn]\nkv_types: [f16, q8]\ninclude_no_rules: true\nrules:\n"
                "  - name: ffn-up\n    rules: [{pattern: 'ffn_(up|gate|down)\\.weight$', type: '+1'}]\n")
    out = os.path.join(tmp, "tune")
    text = os.path.join(os.path.dirname(TASKS.rstrip("/")), "text", "tinystories-val.dev.txt")
    cmd = [CLI, "tune", "-m", MODEL, "--tasks", os.path.join(TASKS, "translate-en-fr.dev.jsonl"), "--limit", "6",
           "--budget", "64M", "-c", "128", "--space", space, "--kld-text", text, "--kld-ctx", "64", "--kld-chunks", "2",
           "-o", out, "-t", "2", "--min-stage-examples", "3"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    pareto = json.load(open(os.path.join(out, "pareto.json")))
    evaluated = [c for c in pareto["candidates"] if "score" in c]
    # Every candidate fits (q4_0's ffn-up gives q5_0, and f16 for ffn_down's rows of 172, as the recipes fall back).
    assert len(evaluated) == 8 and len(pareto["candidates"]) == 8, pareto

    page = os.path.join(out, "report.html")
    html = open(page).read()
    assert not re.search(r"(src|href)=\"https?:", html), "the report links something outside itself"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp}/profile"]
    dom = subprocess.run(base + ["--dump-dom", "file://" + page], capture_output=True, text=True, timeout=120).stdout
    assert "<svg" in dom and 'id="pareto"' in dom and 'id="kld"' in dom, dom[:2000]
    pareto_div = dom[dom.index('id="pareto"'):dom.index('id="kld"')]
    # One marker per evaluated candidate, the front's markers again, the pick's.
    assert pareto_div.count("<circle") >= len(evaluated) + 1, pareto_div.count("<circle")
    table = dom[dom.index('id="candidates"'):]
    table = table[:table.index("</table>")]
    rows = table.count("<tr") - 1
    assert rows == len(pareto["candidates"]), (rows, len(pareto["candidates"]))
    assert pareto["pick"] in dom and 'class="pick"' in dom
    subprocess.run(base + ["--window-size=1280,2600", f"--screenshot={SHOT}", "file://" + page], capture_output=True,
                   timeout=120)
    assert os.path.getsize(SHOT) > 20000, os.path.getsize(SHOT)
    print(f"pick {pareto['pick']}, {len(evaluated)} candidates evaluated, {rows} table rows; screenshot: {SHOT}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
