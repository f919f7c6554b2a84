"""Issue 9, point 5: load. 2 x nproc parallel streams of mixed jobs (ok,
error, timeout, OOM) through `pycell run`; every result must be the right
one, complete, and carry nothing of any other job (files, processes,
output). Bounded: PYCELL_LOAD_JOBS jobs (default 240), each with its own
timeout. The counts are printed at the end.

The jobs run under the ablation policy (Python layer off) so that they can
look for each other with os.listdir; the kernel layers are what keeps them
apart."""
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import run_job
from resctl import ABLATION, IS_ROOT, Isolated, cgroup_version, leased_uid_processes

N_JOBS = int(os.environ.get("PYCELL_LOAD_JOBS", "240"))
STREAMS = 2 * (os.cpu_count() or 1)
KINDS = ("ok", "error", "timeout", "oom")

# Each job leaves a marker named after its token in every place a neighbour
# could look, then reports every marker it can see that is not its own, and
# the pids it can see.
SPY = """
import os, time
tok = input_data["token"]
for d in ("/workspace", "/tmp", "/dev/shm"):
    open(os.path.join(d, "marker-" + tok), "w").write(tok)
foreign = sorted(n for d in ("/workspace", "/tmp", "/dev/shm") for n in os.listdir(d)
                 if n.startswith("marker-") and n != "marker-" + tok)
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("token", tok, flush=True)
"""

CODE = {
    "ok": SPY + "time.sleep(0.02)\nresult = {'token': tok, 'foreign': foreign, 'pids': pids}\n",
    "error": SPY + "raise ValueError('boom ' + tok)\n",
    "timeout": SPY + "while True:\n    pass\n",
    "oom": SPY + "blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))\n",
}
LIMITS = {"timeout": {"wall_ms": 400}, "oom": {"memory_mb": 48}}
EXPECT = {"ok": None, "error": "RUNTIME_ERROR", "timeout": "TIMEOUT", "oom": "MEMORY_LIMIT"}


def one(env, i):
    kind = KINDS[i % len(KINDS)]
    tok = uuid.uuid4().hex
    job = {"id": f"load-{i}", "code": CODE[kind], "input": {"token": tok}, "limits": LIMITS.get(kind, {})}
    return kind, tok, run_job(job, "--policy", ABLATION, env=env, timeout=120)


@pytest.mark.skipif(not (IS_ROOT and cgroup_version() in (1, 2)), reason="needs root and cgroups (OOM jobs)")
def test_mixed_parallel_load(tmp_path, request):
    iso = Isolated(tmp_path)
    seen_tokens = set()
    counts = {k: 0 for k in KINDS}
    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=STREAMS) as pool:
            results = list(pool.map(lambda i: one(iso.env, i), range(N_JOBS)))
        secs = time.monotonic() - t0
        for kind, tok, r in results:
            where = f"{kind} {tok}: {r!r}"[:3000]
            assert r.json is not None and r.stdout.count("\n") == 1, where
            assert r.returncode == (0 if kind == "ok" else 1), where
            assert r.code == EXPECT[kind], where
            assert r.json["id"].startswith("load-")
            # its own output, and nobody else's
            assert r.json["stdout"].startswith(f"token {tok}\n"), where
            assert all(t not in r.json["stdout"] + r.json["stderr"] for t in seen_tokens - {tok}), where
            if kind == "ok":
                assert r.json["result"]["token"] == tok
                assert r.json["result"]["foreign"] == [], where
                assert r.json["result"]["pids"] == [1, 2], where
            if kind == "error":
                assert tok in r.json["error"]["message"], where
            seen_tokens.add(tok)
            counts[kind] += 1
        assert iso.job_groups() == [] and iso.leases() == []
        deadline = time.time() + 3
        while leased_uid_processes() and time.time() < deadline:
            time.sleep(0.05)
        assert leased_uid_processes() == []
    finally:
        iso.cleanup()
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print(f"\nload: {N_JOBS} jobs in {STREAMS} streams, {secs:.1f} s ({N_JOBS / secs:.0f} jobs/s); "
              + ", ".join(f"{k} {v}" for k, v in counts.items()) + "; wrong results 0, leakage 0, leftovers 0")
