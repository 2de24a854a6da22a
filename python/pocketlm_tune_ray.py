#!/usr/bin/env python3
"""Runs one stage of `pocketlm tune` on a Ray cluster: each candidate's job as a Ray task.

Usage (pocketlm tune --ray ADDRESS|auto calls this once per stage):
    pocketlm_tune_ray.py --address ADDRESS|auto --cli /path/to/pocketlm --dir DIR --stage N --threads T ID [ID ...]

Each task runs `pocketlm tune job DIR ID N -t T` on whichever node Ray places it (one task per T CPUs). The
candidates' files, their results and the jobs' records travel through DIR, a directory every node sees (a shared
filesystem such as NFS), not through Ray's object store: a quantized candidate is tens to hundreds of MB that the
job writes once and the next stages read again, and the results must outlive the cluster so that a restarted tune
resumes from them. The pocketlm binary and the base model must be at the same paths on every node.

A task whose worker dies (the node is lost, the process is killed) is retried by Ray (max_retries), and a job that
exits non-zero is retried as well (retry_exceptions); a job is idempotent (it skips what its files say is done and
takes a lock on its candidate), so a retry loses nothing and repeats no finished example. The pocketlm process dies
with its Ray worker (PR_SET_PDEATHSIG), so a killed worker leaves no orphan writing the same files.

`auto`: this machine's running cluster if there is one, else a new local cluster for the duration of the stage.
Exit status 0 when every job finished, 1 otherwise (the failing jobs' errors on stderr).
"""
import argparse
import ctypes
import signal
import subprocess
import sys

import ray

RETRIES = 3


def _die_with_parent():
    # prctl(PR_SET_PDEATHSIG, SIGKILL): the job is killed when the Ray worker that started it dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


@ray.remote(max_retries=RETRIES, retry_exceptions=True)
def run_job(cli, tune_dir, candidate, stage, threads):
    proc = subprocess.run([cli, "tune", "job", tune_dir, candidate, str(stage), "-t", str(threads)],
                          capture_output=True, text=True, preexec_fn=_die_with_parent)
    if proc.returncode != 0:
        raise RuntimeError(f"pocketlm tune job {candidate} {stage}: exit status {proc.returncode}: {proc.stderr[-4000:]}")
    return candidate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--stage", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("ids", nargs="+")
    a = ap.parse_args()
    if a.address == "auto":
        ray.init(log_to_driver=False)  # an existing local cluster, else a new one
    else:
        ray.init(address=a.address, log_to_driver=False)
    task = run_job.options(num_cpus=a.threads)
    pending = {task.remote(a.cli, a.dir, cid, a.stage, a.threads): cid for cid in a.ids}
    failed = 0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        cid = pending.pop(done[0])
        try:
            ray.get(done[0])
        except Exception as e:  # every retry failed
            failed += 1
            print(f"error: candidate {cid}, stage {a.stage}: {e}", file=sys.stderr)
    ray.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
