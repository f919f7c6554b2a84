"""Issue 4: nothing is left behind, on any path: success, every error code,
a signal to pycell (SIGTERM/SIGINT end the job cleanly), and a SIGKILLed
pycell (then `pycell gc`). Soak tests: sequential and 2 x nproc parallel
jobs leave no cgroups, leases, processes or mounts, and no fd growth."""
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import PYCELL, run_job
from resctl import ABLATION, IS_ROOT, Isolated, cgroup_version, leased_uid_processes

SOAK_N = int(os.environ.get("PYCELL_SOAK_N", "300"))
HAVE_CG = IS_ROOT and cgroup_version() in (1, 2)


@pytest.fixture
def iso(tmp_path):
    i = Isolated(tmp_path)
    yield i
    i.cleanup()


def mount_count():
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


def assert_clean(iso):
    assert iso.job_groups() == [], "job cgroups left behind"
    assert iso.leases() == [], "lease files left behind"
    # a SIGKILLed task may still be leaving the process table for a moment
    deadline = time.time() + 2
    while leased_uid_processes() and time.time() < deadline:
        time.sleep(0.02)
    assert leased_uid_processes() == [], "processes with a leased uid left behind"


def start_sleeper(iso, seconds=30):
    job = json.dumps({"code": f"import time\nprint('up', flush=True)\ntime.sleep({seconds})"})
    p = subprocess.Popen([PYCELL, "run", "--policy", ABLATION, "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=iso.env)
    p.stdin.write(job.encode())
    p.stdin.close()
    p.stdin = None
    deadline = time.time() + 20
    while time.time() < deadline:
        if (not HAVE_CG or iso.job_groups()) and (not IS_ROOT or iso.leases()) and leased_or_any(iso):
            return p
        time.sleep(0.05)
    p.kill()
    raise AssertionError("the job did not start")


def leased_or_any(iso):
    return leased_uid_processes() if IS_ROOT else True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_pycell_ends_the_job_cleanly(iso, sig):
    mounts = mount_count()
    p = start_sleeper(iso)
    time.sleep(0.2)
    p.send_signal(sig)
    out, errout = p.communicate(timeout=20)
    res = json.loads(out)
    assert res["error"]["code"] == "INTERNAL_ERROR", res
    assert res["error"]["details"] == {"reason": "interrupted", "signal": int(sig)}
    assert p.returncode == 125
    assert_clean(iso)
    assert mount_count() == mounts


def test_sigkilled_pycell_then_gc_leaves_nothing(iso):
    mounts = mount_count()
    p = start_sleeper(iso)
    p.kill()  # SIGKILL: pycell cleans up nothing
    p.wait(timeout=10)
    p.stdout.close(), p.stderr.close()
    # the sandbox dies with its supervisor (PR_SET_PDEATHSIG); its groups and lease file stay
    deadline = time.time() + 10
    while leased_uid_processes() and time.time() < deadline:
        time.sleep(0.05)
    assert leased_uid_processes() == []
    if HAVE_CG:
        assert iso.job_groups() != []
    if IS_ROOT:
        assert iso.leases() != []
    gc = subprocess.run([PYCELL, "gc"], capture_output=True, text=True, env=iso.env, timeout=30)
    assert gc.returncode == 0, gc.stderr
    counts = json.loads(gc.stdout)
    assert counts["cgroups_removed"] == (1 if HAVE_CG else 0)
    assert counts["leases_removed"] == (1 if IS_ROOT else 0)
    assert_clean(iso)
    assert mount_count() == mounts


def test_reader_going_away_does_not_kill_pycell_mid_job(iso):
    # `pycell exec ... | head`: SIGPIPE must not end pycell before it cleans up
    code = "for i in range(2000):\n    print('x' * 1000)"
    p = subprocess.Popen([PYCELL, "exec", "--policy", ABLATION, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=iso.env)
    p.stdout.read(10)
    p.stdout.close()
    assert p.wait(timeout=30) != -signal.SIGPIPE
    assert_clean(iso)


def test_gc_spares_a_running_job(iso):
    p = start_sleeper(iso, seconds=3)
    gc = subprocess.run([PYCELL, "gc"], capture_output=True, text=True, env=iso.env, timeout=30)
    assert json.loads(gc.stdout) == {"cgroups_removed": 0, "leases_removed": 0}
    out, _ = p.communicate(timeout=20)
    assert json.loads(out)["status"] == "ok"
    assert_clean(iso)


ERROR_JOBS = [
    ({"code": "print(1)"}, None),
    ({"code": "raise ValueError('x')"}, "RUNTIME_ERROR"),
    ({"code": "import time\ntime.sleep(5)", "limits": {"wall_ms": 300}}, "TIMEOUT"),
    ({"code": "print('x' * 100000)", "limits": {"stdout_bytes": 1000}}, "OUTPUT_LIMIT"),
    ({"code": "x = bytearray(400 * 1024 * 1024)", "limits": {"memory_mb": 64}}, "MEMORY_LIMIT" if HAVE_CG else None),
    ({"code": "while True: pass", "limits": {"cpu_ms": 200}}, "CPU_LIMIT"),
]


@pytest.mark.parametrize("job,code", ERROR_JOBS, ids=[c or "ok" for _, c in ERROR_JOBS])
def test_every_outcome_cleans_up(iso, job, code):
    res = run_job(job, "--policy", ABLATION, env=iso.env)
    if code:
        assert res.code == code, res
    assert_clean(iso)


def fds_balanced(res):
    lines = [l for l in res.stderr.splitlines() if l.startswith("pycell: fds at")]
    return len(lines) == 2 and int(lines[1].split(":")[-1]) <= int(lines[0].split(":")[-1])


def test_soak_sequential(iso):
    env = dict(iso.env, PYCELL_DEBUG_FDS="1")
    mounts = mount_count()
    t0 = time.time()
    for i in range(SOAK_N):
        res = run_job({"code": f"print({i})"}, "--policy", ABLATION, env=env)
        assert res.json["stdout"] == f"{i}\n", res
        assert fds_balanced(res), res.stderr
    elapsed = time.time() - t0
    print(f"\nsoak: {SOAK_N} sequential jobs in {elapsed:.1f} s ({elapsed / SOAK_N * 1000:.0f} ms/job)")
    assert_clean(iso)
    assert mount_count() == mounts


def test_soak_parallel(iso):
    env = dict(iso.env, PYCELL_DEBUG_FDS="1")
    width = 2 * (os.cpu_count() or 1)
    rounds = max(1, SOAK_N // 30)
    mounts = mount_count()
    t0 = time.time()
    code = "import time\ntime.sleep(0.05)\nprint(sum(range(100000)))"
    with ThreadPoolExecutor(width) as ex:
        results = list(ex.map(lambda _: run_job({"code": code}, "--policy", ABLATION, env=env),
                              range(width * rounds)))
    elapsed = time.time() - t0
    print(f"\nsoak: {width * rounds} jobs, {width} at a time, in {elapsed:.1f} s")
    for res in results:
        assert res.json["status"] == "ok", res
        assert fds_balanced(res), res.stderr
    assert_clean(iso)
    assert mount_count() == mounts
