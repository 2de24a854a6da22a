#!/usr/bin/env python3
"""The web chat page of `pocketlm serve` in headless Chromium: it streams a reply and shows the speed.

Usage: chat_page_e2e.py POCKETLM_CLI MODEL.gguf [SCREENSHOT.png]

Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: no extra package): opens
`/?q=...` (the page sends q as the first message), waits until the reply has streamed in (the Send button is
enabled again), checks that it is not empty and that the speed line is shown, and saves a screenshot.
Exit 77 (ctest: skipped) without chromium or the model.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time

CLI, MODEL = sys.argv[1], sys.argv[2]
SHOT = sys.argv[3] if len(sys.argv) > 3 else "chat_page.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if not CHROMIUM or not os.path.exists(MODEL):
    print("chromium or the model is missing: skipped")
    sys.exit(77)


class DevTools:
    def __init__(self):
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()

        def fds():  # the protocol pipe is the child's fds 3 (in) and 4 (out)
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                                      "--window-size=900,640", "--user-data-dir=" + os.path.abspath(SHOT) + ".profile",
                                      "about:blank"], preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0

    def call(self, method, params=None, session=None):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(os.path.abspath(SHOT) + ".profile", ignore_errors=True)


def main():
    server = subprocess.Popen([CLI, "serve", "-m", MODEL, "--port", "0", "-c", "1024", "--parallel", "2", "-t", "2"],
                              stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        port = int(m.group(1)) if m else port
        if "ready:" in line:
            break
    browser = DevTools()
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Page.enable", session=s)
        browser.call("Page.navigate", {"url": f"http://127.0.0.1:{port}/?q=Write%20a%20haiku%20about%20the%20sea."}, session=s)

        def js(expr):
            r = browser.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=s)
            return r["result"].get("value")

        deadline = time.time() + 90
        state = None
        while time.time() < deadline:
            state = js("""(() => { const a = document.querySelector('.msg.assistant'), e = document.querySelector('.msg.error');
                          return {reply: a ? a.textContent : null, error: e ? e.textContent : null,
                                  busy: document.getElementById('send').disabled,
                                  speed: document.getElementById('speed').textContent}; })()""")
            if state and state["reply"] is not None and not state["busy"]:
                break
            time.sleep(0.25)
        png = browser.call("Page.captureScreenshot", {"format": "png"}, session=s)["data"]
        with open(SHOT, "wb") as f:
            f.write(base64.b64decode(png))
        print(f"state: {state}\nscreenshot: {SHOT}")
        ok = state and not state["busy"] and not state["error"] and state["reply"] and "/s" in state["speed"]
        return 0 if ok else 1
    finally:
        browser.close()
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
