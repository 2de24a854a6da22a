"""`pocketlm serve` as a child process for the Python end-to-end tests (openai_client_e2e, lm_eval_e2e)."""
import re
import subprocess
import sys


def start_server(cli, model, *extra):
    """Starts `pocketlm serve -m MODEL --port 0 EXTRA...` and waits for its "ready:" line: (process, port).
    The port is the one it printed ("listening on http://HOST:PORT"); exits the test if it never gets ready."""
    p = subprocess.Popen([cli, "serve", "-m", model, "--port", "0", *extra], stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "ready:" in line:
            break
    if port is None:
        p.kill()
        sys.exit("the server did not start")
    return p, port
