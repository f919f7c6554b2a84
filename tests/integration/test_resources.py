"""Issue 4: cgroups (v1 here, v2 in the qemu lane), rlimits, accounting and
uid leases. Every limit test asserts the exact error code and the evidence
it came from. The Python layer is off (ablation policy) so only the kernel
layers are measured."""
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import MUST_WORK, PYCELL, run_job
from resctl import ABLATION, IS_ROOT, UID_BASE, UID_COUNT, Isolated, cgroup_version, children

MiB = 1024 * 1024
HAVE_CG = IS_ROOT and cgroup_version() in (1, 2)
needs_cgroups = pytest.mark.skipif(not HAVE_CG and not MUST_WORK, reason="needs root and cgroup v1 or v2")


@pytest.fixture
def iso(tmp_path):
    i = Isolated(tmp_path)
    try:
        yield i
        assert i.job_groups() == [], "job cgroups left behind"
        assert i.leases() == [], "lease files left behind"
    finally:
        i.cleanup()


def job(iso, code, **limits):
    return run_job({"code": code, "limits": limits}, "--policy", ABLATION, env=iso.env)


def err(res):
    e = res.json["error"]
    return e and (e["code"], e["details"].get("evidence"))


@needs_cgroups
def test_memory_balloon_is_memory_limit(iso):
    res = job(iso, "x = bytearray(600 * 1024 * 1024)\nprint(len(x))", memory_mb=128)
    assert res.code == "MEMORY_LIMIT", res
    assert res.json["error"]["details"]["evidence"].endswith("oom_kill")
    assert res.returncode == 1
    # the host is unharmed: the next job runs normally
    assert job(iso, "print('fine')").json["stdout"] == "fine\n"


@needs_cgroups
def test_fork_bomb_is_pids_limit(iso):
    res = job(iso, "import os\nwhile True:\n    os.fork()", pids=32, wall_ms=10000)
    assert res.code == "PIDS_LIMIT", res
    assert res.json["error"]["details"]["evidence"] == "pids.events max"


@needs_cgroups
def test_thread_bomb_is_pids_limit(iso):
    code = ("import threading, time\n"
            "ts = []\n"
            "while True:\n"
            "    t = threading.Thread(target=time.sleep, args=(30,), daemon=True); t.start(); ts.append(t)\n")
    res = job(iso, code, pids=32)
    assert res.code == "PIDS_LIMIT", res


@needs_cgroups
def test_busy_loop_is_cpu_limit(iso):
    res = job(iso, "while True:\n    pass", cpu_ms=400, wall_ms=10000)
    assert res.code == "CPU_LIMIT", res
    m = res.json["metrics"]
    # killed by the supervisor's poll soon after the limit, long before the wall clock
    assert 400 <= m["cpu_ms"] < 1500, m
    assert m["wall_ms"] < 5000, m


def test_cpu_rlimit_backstop_without_cgroups(iso):
    env = dict(iso.env, PYCELL_CGROUP_VERSION="0")
    res = run_job({"code": "while True:\n    pass", "limits": {"cpu_ms": 1000}}, "--policy", ABLATION, env=env)
    assert res.code == "CPU_LIMIT", res
    assert res.json["error"]["details"]["evidence"] == "cpu time (RLIMIT_CPU)"
    assert res.json["metrics"]["unapplied_limits"] == ["memory", "pids", "cpu"]


def test_a_self_sent_sigxcpu_is_not_a_cpu_limit(iso):
    """The signal alone is no evidence: the job's cpu time must be near its limit."""
    env = dict(iso.env, PYCELL_CGROUP_VERSION="0")
    code = "import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)"
    res = run_job({"code": code, "limits": {"cpu_ms": 1000}}, "--policy", ABLATION, env=env)
    assert res.code == "RUNTIME_ERROR", res
    assert "signal 24" in res.json["error"]["message"], res


def test_tmpfs_fill_is_disk_limit(iso):
    code = "f = open('/workspace/big', 'wb')\nwhile True:\n    f.write(b'x' * 1048576)"
    res = job(iso, code, tmpfs_mb=8, file_bytes=1024 * MiB)
    assert err(res) == ("DISK_LIMIT", "ENOSPC"), res


def test_file_past_file_bytes_is_disk_limit(iso):
    code = "open('/workspace/one', 'wb').write(b'x' * 3000000)"
    res = job(iso, code, file_bytes=1000000)
    assert err(res) == ("DISK_LIMIT", "EFBIG"), res


@needs_cgroups
def test_peak_memory_of_200mb_allocation(iso):
    code = "x = bytearray(200 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\nprint('ok')"
    res = job(iso, code, memory_mb=512)
    assert res.json["status"] == "ok", res
    peak = res.json["metrics"]["peak_memory_bytes"]
    assert 200 * MiB <= peak <= 300 * MiB, peak


def test_metrics_are_reported(iso):
    res = job(iso, "s = 0\nfor i in range(2000000): s += i\nprint(s)")
    m = res.json["metrics"]
    assert res.json["status"] == "ok", res
    assert m["cpu_ms"] > 10 and m["peak_memory_bytes"] > 1 * MiB, m
    assert m["cgroup_version"] == (cgroup_version() if HAVE_CG else 0)


@needs_cgroups
def test_job_sees_its_own_cgroup_as_root(iso):
    res = job(iso, "print(open('/proc/self/cgroup').read())")
    lines = res.json["stdout"].split()
    assert lines, res
    for line in lines:
        ctl, path = line.split(":", 2)[1:]
        if ctl in ("", "memory", "pids", "cpu", "cpuacct") or "memory" in ctl:
            assert path == "/", lines


def test_rlimits_inside_the_sandbox(iso):
    code = ("import resource as r\n"
            "print([r.getrlimit(x) for x in (r.RLIMIT_CPU, r.RLIMIT_FSIZE, r.RLIMIT_NOFILE, r.RLIMIT_CORE,"
            " r.RLIMIT_STACK, r.RLIMIT_NPROC)])")
    res = job(iso, code, cpu_ms=2500, file_bytes=12345, pids=40)
    got = json.loads(res.json["stdout"].replace("(", "[").replace(")", "]"))
    assert got == [[3, 4], [12345, 12345], [256, 256], [0, 0], [8 * MiB, 8 * MiB], [80, 80]], res


@needs_cgroups
def test_cpu_percent_throttles(iso):
    # 30% of a core for 1 s of wall time: about 300 ms of cpu for the loop
    # (measured inside, so a slow interpreter start-up does not count)
    code = ("import time\nt, c = time.time(), time.process_time()\n"
            "while time.time() - t < 1.0:\n    pass\nprint(time.process_time() - c)")
    res = job(iso, code, cpu_percent=30)
    assert res.json["status"] == "ok", res
    assert float(res.json["stdout"]) < 0.6, res.json["stdout"]


@pytest.mark.skipif(not IS_ROOT, reason="uid leases are for root")
def test_parallel_jobs_get_distinct_leased_uids(iso):
    code = "import time; print(open('/proc/self/uid_map').read().split()[1]); time.sleep(0.5)"
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda _: job(iso, code), range(4)))
    uids = [int(o.json["stdout"]) for o in outs]
    assert len(set(uids)) == 4, uids
    assert all(UID_BASE <= u < UID_BASE + UID_COUNT for u in uids), uids


def test_policy_can_require_cgroups(iso, tmp_path):
    pol = tmp_path / "req.json"
    pol.write_text(json.dumps({"name": "req", "extends": ABLATION, "require_cgroups": True}))
    env = dict(iso.env, PYCELL_CGROUP_VERSION="0")
    res = run_job({"code": "print(1)"}, "--policy", str(pol), env=env)
    assert res.code == "INTERNAL_ERROR", res
    assert "requires cgroups" in res.json["error"]["message"]
    assert res.json["stdout"] == ""


def test_rootless_mode_says_what_is_not_enforced(iso):
    env = dict(iso.env, PYCELL_CGROUP_VERSION="0")
    res = run_job({"code": "print(1)"}, "--policy", ABLATION, env=env)
    assert res.json["status"] == "ok", res
    assert res.json["metrics"]["cgroup_version"] == 0
    assert res.json["metrics"]["unapplied_limits"] == ["memory", "pids", "cpu"]


@pytest.mark.skipif(not IS_ROOT or not os.path.exists("/usr/bin/setpriv"), reason="needs root to drop to nobody")
def test_unprivileged_caller_runs_with_limits_reported_unapplied(iso):
    # rootless without a delegated cgroup: the job runs with the caller's own
    # id, rlimits still apply, and the result says what is not enforced
    job_json = json.dumps({"code": "import resource as r; print(r.getrlimit(r.RLIMIT_NOFILE)[0])"})
    proc = subprocess.run(["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                           PYCELL, "run", "--policy", ABLATION, "-"], input=job_json, capture_output=True,
                          text=True, env=iso.env, cwd="/", timeout=60)
    res = json.loads(proc.stdout)
    assert res["status"] == "ok", res
    assert res["stdout"] == "256\n"
    assert res["metrics"]["cgroup_version"] == 0
    assert res["metrics"]["unapplied_limits"] == ["memory", "pids", "cpu"]
    assert res["metrics"]["cpu_ms"] > 0 and res["metrics"]["peak_memory_bytes"] > 0


def _rss_anon_kib(pid):
    for ln in open(f"/proc/{pid}/status"):
        if ln.startswith("RssAnon:"):
            return int(ln.split()[1])
    raise AssertionError(f"no RssAnon for {pid}")


def test_supervisor_gives_back_a_large_inputs_parse_tree(iso, tmp_path):
    """The supervisor parses the whole job, input included, into a json-c
    tree (a 16-slot hash table per object: ~20 MiB for this 0.5 MiB input)
    and frees it before the sandbox starts; its pages must go back to the
    kernel, not stay charged to the supervisor for the whole job."""
    data = [{"id": i, "m": "x"} for i in range(25000)]
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"code": "import time\ntime.sleep(3)", "input": data, "limits": {"wall_ms": 20000}}))
    p = subprocess.Popen([PYCELL, "run", "--policy", ABLATION, str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=iso.env)
    try:
        for _ in range(400):  # until the sandbox exists (the parse is done)
            if children(p.pid):
                break
            time.sleep(0.01)
        assert children(p.pid), "no sandbox started"
        time.sleep(0.3)
        rss = _rss_anon_kib(p.pid)
    finally:
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(out)["status"] == "ok"
    # The job's text is 0.5 MiB and the supervisor keeps one copy of the
    # input (for the job's stdin); the tree alone would be ~20 MiB.
    assert rss < 4 * 1024, f"supervisor RssAnon {rss} KiB while the job ran"
