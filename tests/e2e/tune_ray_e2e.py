#!/usr/bin/env python3
"""pocketlm tune --ray on a local two-node Ray cluster (issue 19).

Usage: tune_ray_e2e.py POCKETLM_CLI STORIES260K.gguf TASKS_DIR

Starts a Ray head and a second node (ray.cluster_utils.Cluster: two raylets on their own ports, one CPU each,
as `ray start --head` plus `ray start --address` would), then:
  1. a small tune with --ray gives the same pareto.json and pick.gguf as --workers 1;
  2. the same tune again in a new directory while one Ray worker running a job is killed (SIGKILL) mid-task: Ray
     retries the task, the tune finishes with the same pareto.json, and no example is scored twice.
Exit 77 (ctest: skipped) without the ray package or the model. Slow (Ray's start-up): opt-in with
POCKETLM_SLOW_TESTS=1, like the other slow tests.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

CLI, MODEL, TASKS = sys.argv[1:4]
if os.environ.get("POCKETLM_SLOW_TESTS") != "1":
    print("slow test: set POCKETLM_SLOW_TESTS=1")
    sys.exit(77)
try:
    import ray  # noqa: F401
    from ray.cluster_utils import Cluster
except ImportError:
    print("the ray package is missing (scripts/install-deps.sh): skipped")
    sys.exit(77)
if not os.path.exists(MODEL):
    print(f"{MODEL} missing: skipped")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="tune-ray-")
SPACE = os.path.join(tmp, "space.yaml")
with open(SPACE, "w") as f:
    f.write("targets: [Q8_0, q4_0]\nmethods: [rtn]\nkv_types: [f16, q8]\n")


def tune(out, *extra):
    cmd = [CLI, "tune", "-m", MODEL, "--tasks", os.path.join(TASKS, "translate-en-fr.dev.jsonl"), "--limit", "6",
           "--budget", "64M", "-c", "128", "--space", SPACE, "-o", out, "-t", "1", "--min-stage-examples", "3", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


cluster = None
try:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    address = cluster.address
    print(f"cluster: {address}, 2 nodes")

    one = os.path.join(tmp, "one")
    r = tune(one)
    assert r.returncode == 0, r.stderr
    viaray = os.path.join(tmp, "ray")
    r = tune(viaray, "--ray", address)
    assert r.returncode == 0, r.stderr
    assert "Ray tasks" in r.stderr, r.stderr
    ref = json.load(open(os.path.join(one, "pareto.json")))
    assert json.load(open(os.path.join(viaray, "pareto.json"))) == ref, "--ray gave another pareto.json"
    assert open(os.path.join(one, "pick.gguf"), "rb").read() == open(os.path.join(viaray, "pick.gguf"), "rb").read()
    print(f"--ray = --workers 1: pick {ref['pick']}")

    # Kill one Ray worker while it runs a job: the parent of a `pocketlm tune job` process under this tune's dir.
    killed_dir = os.path.join(tmp, "killed")
    killed = []

    def killer():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            for p in os.listdir("/proc"):
                if p.isdigit() and f"tune job {killed_dir} " in cmdline(int(p)):
                    time.sleep(0.05)  # mid-task
                    with open(f"/proc/{p}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    if "pocketlm" in cmdline(ppid):
                        continue
                    job = cmdline(int(p))
                    os.kill(ppid, signal.SIGKILL)
                    killed.append((ppid, job))
                    return
            time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    r = tune(killed_dir, "--ray", address)
    t.join()
    assert killed, "no job was seen running: nothing was killed"
    print(f"killed Ray worker {killed[0][0]} running: {killed[0][1].strip()}")
    assert r.returncode == 0, r.stderr
    assert json.load(open(os.path.join(killed_dir, "pareto.json"))) == ref, "a killed worker changed the outcome"
    for name in os.listdir(os.path.join(killed_dir, "evals")):
        if name.endswith(".jsonl"):
            keys = [json.loads(l)["key"] for l in open(os.path.join(killed_dir, "evals", name)).read().splitlines()[1:]]
            assert len(keys) == len(set(keys)), f"{name}: an example was scored twice"
    print("killed worker: retried, same pareto.json, no example scored twice")
finally:
    if cluster is not None:
        try:
            cluster.shutdown()
        except Exception as e:  # a loaded machine can time out the graceful drain: kill this cluster's processes
            print(f"cluster shutdown: {e}; killing its processes")
            for node in list(cluster.worker_nodes) + ([cluster.head_node] if cluster.head_node else []):
                try:
                    node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
                except Exception as e2:
                    print(f"kill: {e2}")
    shutil.rmtree(tmp, ignore_errors=True)
