"""`pycell audit --server SOCKET` (issue 11, docs/audit.md, docs/warm.md):
the audit's evidence job runs warm, through a one-off zygote of the
server's own policy and rootfs, and `import os` through the server's pool
zygote; the report is judged by the same code as cold audit. Every layer
cold audit passes must pass warm, a weakened served policy FAILs the same
lines, and the audit leaves the pool, the cgroups, the leases and the
process tree as it found them."""
import json
import socket
import subprocess
import threading

import pytest

from conftest import PYCELL, REPO
from resctl import IS_ROOT, Isolated, leased_uid_processes
from test_warm import WarmServer, descendants

POLICIES = REPO / "tests" / "policies"
WEAK = str(POLICIES / "weak-noseccomp.json")


class Server(WarmServer):
    """A `pycell serve` with the test's private cgroup parent and leases."""

    def __init__(self, iso, *args):
        super().__init__(*args, env=iso.env)
        self.iso = iso


def audit(iso, *args, timeout=120):
    return subprocess.run([PYCELL, "audit", *args], capture_output=True, text=True, timeout=timeout, env=iso.env)


@pytest.fixture(scope="module")
def iso(tmp_path_factory):
    i = Isolated(tmp_path_factory.mktemp("audit-warm"))
    yield i
    i.cleanup()


@pytest.fixture(scope="module")
def default(iso):
    s = Server(iso)
    yield s
    pid = s.proc.pid
    s.stop()
    assert not descendants(pid)
    assert not iso.job_groups(), "job cgroups were left behind"


@pytest.fixture(scope="module")
def cold_json(iso):
    p = audit(iso, "--format", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def by_id(doc):
    return {c["id"]: c for c in doc["checks"]}


def test_every_check_cold_passes_passes_warm(iso, default, cold_json):
    p = audit(iso, "--server", default.sock, "--format", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    warm = json.loads(p.stdout)
    assert warm["mode"] == "warm" and cold_json["mode"] == "cold"
    assert (warm["policy"], warm["rootfs"]) == (cold_json["policy"], cold_json["rootfs"]) == ("default", "minimal")
    assert warm["ok"] is True and warm["summary"]["fail"] == 0
    w, c = by_id(warm), by_id(cold_json)
    assert set(w) == set(c) and len(c) == 29
    cold_pass = [k for k, v in c.items() if v["status"] == "PASS"]
    assert len(cold_pass) >= 28  # landlock alone may be absent (kernel)
    assert [k for k in cold_pass if w[k]["status"] != "PASS"] == [], {k: w[k] for k in cold_pass}
    # The evidence came from a warm job: the zygote leaves RLIMIT_NPROC to
    # the pids cgroup (docs/warm.md), and the audit says so; cold has it.
    assert "cgroup-bounded (warm): nproc" in w["rlimits"]["evidence"]
    assert "nproc=" in c["rlimits"]["evidence"] and "warm" not in c["rlimits"]["evidence"]
    assert "nproc=" not in w["rlimits"]["evidence"]
    assert w["python.import_refused"]["evidence"] == "`import os` -> SECURITY_ERROR import_not_allowed:os"
    # Same layers, same judgement: the evidence lines that name no per-job
    # value are the cold ones word for word.
    for k in ("seccomp.filter", "seccomp.denied_syscalls", "seccomp.exec_filter", "capabilities.sets",
              "no_new_privs", "cgroup.memory", "cgroup.pids", "cgroup.cpu", "landlock", "network.interfaces",
              "filesystem.rootfs_write", "fds"):
        assert w[k]["evidence"] == c[k]["evidence"], k


def test_text_and_markdown_reports_say_warm(iso, default):
    t = audit(iso, "--server", default.sock)
    assert t.returncode == 0, t.stdout + t.stderr
    first = t.stdout.splitlines()[0]
    assert first == f"pycell audit (warm, server '{default.sock}'): policy 'default', rootfs 'minimal'"
    assert t.stdout.rstrip().splitlines()[-1].startswith("summary: ")
    m = audit(iso, "--server", default.sock, "--format", "markdown")
    assert m.returncode == 0
    assert m.stdout.startswith("### pycell audit (warm, server ")
    assert "| `seccomp.filter` | PASS |" in m.stdout
    c = audit(iso)
    assert c.stdout.splitlines()[0] == "pycell audit (cold): policy 'default', rootfs 'minimal'"


def test_the_audit_leaves_the_pool_cgroups_and_processes_alone(iso, default):
    assert default.run({"code": "result = 1"})[1]["status"] == "ok"
    now, want, h0 = default.settled()
    assert now == want
    leases0 = iso.leases()  # once the last job's handler has released its own
    results = []

    def jobs():  # the pool keeps serving while the audit runs
        for n in range(6):
            results.append(default.run({"code": f"result = {n} * 7"}))

    t = threading.Thread(target=jobs)
    t.start()
    p = audit(iso, "--server", default.sock)
    t.join()
    assert p.returncode == 0, p.stdout + p.stderr
    assert [(s, d["status"], d["result"]) for s, d in results] == [(200, "ok", n * 7) for n in range(6)]
    now, want, h1 = default.settled()
    assert h1["zygotes"] == h0["zygotes"], "the audit replaced or added a pool zygote"
    assert h1["replaced"] == h0["replaced"]
    assert now == want, "the audit's zygote outlived it"
    # on v1 a live handler keeps its job group for its next job; nothing else is left
    kept = [g for g in iso.job_groups() if not any(f"/job-{h}-" in g for h in h1["handlers"])]
    assert not kept, "a job cgroup was left behind"
    assert iso.leases() == leases0
    if IS_ROOT:
        pool_uids = {int(open(f"/proc/{z}/status").read().split("Uid:")[1].split()[1]) for z in h1["zygotes"]}
        others = [q for q in leased_uid_processes()
                  if int(open(f"/proc/{q}/status").read().split("Uid:")[1].split()[1]) not in pool_uids]
        assert others == [], "a process of another leased uid is alive"
    status, doc = default.run({"code": "print('after')"})
    assert status == 200 and doc["stdout"] == "after\n"


def test_a_served_policy_without_seccomp_fails_the_seccomp_lines_as_cold(iso):
    s = Server(iso, "--policy", WEAK)
    try:
        p = audit(iso, "--server", s.sock, "--format", "json")
        t = audit(iso, "--server", s.sock)
    finally:
        s.stop()
    cold = audit(iso, "--policy", WEAK, "--format", "json")
    assert p.returncode == 1 and cold.returncode == 1, p.stdout + p.stderr
    assert t.returncode == 1
    warm, c = by_id(json.loads(p.stdout)), by_id(json.loads(cold.stdout))
    failed = sorted(k for k, v in warm.items() if v["status"] == "FAIL")
    assert failed == sorted(k for k, v in c.items() if v["status"] == "FAIL")
    assert failed == ["seccomp.denied_syscalls", "seccomp.filter"]
    assert "Seccomp_filters=1" in warm["seccomp.filter"]["evidence"]
    assert "socket_netlink=OK" in warm["seccomp.denied_syscalls"]["evidence"]
    assert warm["seccomp.exec_filter"]["status"] == "PASS"
    assert json.loads(p.stdout)["policy"] == json.loads(cold.stdout)["policy"]
    assert "FAIL  seccomp.filter" in t.stdout


def test_baseline_against_a_server(iso, default, cold_json, tmp_path):
    base = tmp_path / "approved.json"
    base.write_text(json.dumps(cold_json))
    same = audit(iso, "--server", default.sock, "--baseline", str(base))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "baseline: 0 regression(s)" in same.stdout
    assert "REGRESSION" not in same.stdout
    s = Server(iso, "--policy", WEAK)
    try:
        weak = audit(iso, "--server", s.sock, "--baseline", str(base))
    finally:
        s.stop()
    assert weak.returncode == 1
    regs = sorted(l.split(":")[0] for l in weak.stdout.splitlines() if l.startswith("REGRESSION"))
    assert regs == ["REGRESSION seccomp.denied_syscalls", "REGRESSION seccomp.filter"]


def test_no_server_is_a_clear_runtime_error(iso, tmp_path):
    missing = tmp_path / "nobody.sock"
    p = audit(iso, "--server", str(missing))
    assert p.returncode == 125
    assert p.stdout == ""
    assert f"cannot reach the server on '{missing}': No such file or directory" in p.stderr
    assert f"is `pycell serve --socket {missing}` running?" in p.stderr
    # A socket nobody listens on any more.
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()
    p = audit(iso, "--server", str(dead))
    assert p.returncode == 125 and "Connection refused" in p.stderr


def test_server_mode_audits_the_servers_policy_only(iso, default):
    p = audit(iso, "--server", default.sock, "--policy", WEAK)
    assert p.returncode == 2
    assert "drop --policy and --rootfs" in p.stderr


def test_the_route_wants_post_without_a_body(default):
    status, _, data = default.request("GET", "/v1/audit")
    assert status == 405 and json.loads(data)["error"]["code"] == "HTTP_405"
    status, _, data = default.request("POST", "/v1/audit", "{}")
    assert status == 400 and json.loads(data)["error"]["code"] == "HTTP_400"
    status, _, data = default.request("POST", "/v1/audit", "")
    doc = json.loads(data)
    assert status == 200 and doc["mode"] == "warm" and doc["ok"] is True


def test_a_job_the_server_cannot_run_is_a_runtime_error_with_its_reason(iso, tmp_path):
    # A 1 ms wall clock: the evidence job times out, cold and warm alike.
    pol = tmp_path / "tiny-wall.json"
    pol.write_text(json.dumps({"name": "tiny-wall", "extends": str(REPO / "policy" / "default.json"),
                               "limits": {"wall_ms": {"default": 1, "max": 1}}}))
    cold = audit(iso, "--policy", str(pol))
    s = Server(iso, "--policy", str(pol))
    try:
        status, _, data = s.request("POST", "/v1/audit", "")
        p = audit(iso, "--server", s.sock)
        ok = s.run({"code": "result = 1"})  # the pool still answers (ok or TIMEOUT: 1 ms is tight even warm)
    finally:
        s.stop()
    assert cold.returncode == 125 and "the evidence job failed" in cold.stderr and "TIMEOUT" in cold.stderr
    assert status == 500
    err = json.loads(data)["error"]
    assert err["code"] == "AUDIT_FAILED" and err["message"].startswith("the evidence job failed: ")
    assert p.returncode == 125 and p.stdout == ""
    assert f"the server on '{s.sock}' could not run the audit (HTTP 500): the evidence job failed: " in p.stderr
    assert "TIMEOUT" in p.stderr
    assert ok[0] == 200 and (ok[1]["status"], (ok[1]["error"] or {}).get("code")) in (("ok", None),
                                                                                     ("error", "TIMEOUT"))
    assert not iso.job_groups()
