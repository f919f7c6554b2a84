"""`pycell serve`'s handlers are forked once and reused (serve_worker.c,
docs/warm.md): a job of any outcome leaves no descriptor in its handler,
a zygote replacement takes the handlers holding the old zygote along (the
retired zygote then exits), an audit's handler is replaced, and a handler
that dies is replaced without the server losing its slot. The
server_factory teardown also fails a test whose server logged a handler
that ended badly (under ASan: a leak, from the leak check at its exit)."""
import collections
import os
import re
import signal
import threading
import time

import pytest

from resctl import CG_ROOT, alive, cgroup_version
from test_warm import ABLATION
from test_warm_metrics import server_factory, wait_for  # noqa: F401 (fixture)

SLOW = "import time\ntime.sleep(0.3)\nresult = 1"
SPLICE = "import os\nr, w = os.pipe()\nr2, w2 = os.pipe()\nos.write(w, b'x')\nos.splice(r, w2, 1)\n"

# One job of each way a job ends; every one is cleaned up by the same handler.
OUTCOMES = [
    ({"code": "result = 6 * 7"}, "ok", None),
    ({"code": "raise ValueError('no')"}, "error", "RUNTIME_ERROR"),
    ({"code": 5}, "error", "INVALID_JOB"),
    ({"code": "while True: pass", "limits": {"wall_ms": 300}}, "error", "TIMEOUT"),
    ({"code": "a = bytearray(600 * 1024 * 1024)", "limits": {"wall_ms": 3000}}, "error", "MEMORY_LIMIT"),
    ({"code": "import os\nfor _ in range(200):\n    os.fork()", "limits": {"wall_ms": 3000}}, "error", "PIDS_LIMIT"),
    ({"code": SPLICE}, "error", "SECURITY_ERROR"),
    ({"code": "print('x' * 5_000_000)"}, "error", "OUTPUT_LIMIT"),
]


def fd_kinds(pid):
    """The handler's descriptors by kind (pipe, socket, memfd, file path):
    inode numbers differ from job to job, the kinds and counts must not.
    Its job group (v1: kept for the next job, its files open with it,
    cgroup_v1.c) is counted apart: one group, its 4 directories and at most
    the 15 files it uses."""
    kinds, groups = collections.Counter(), set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        m = re.match(r"/sys/fs/cgroup/[^/]+/[^/]+/(job-[^/]+)(/|$)", link)
        if m:
            groups.add(m.group(1))
            kinds["cgroup files"] += 1
        else:
            kinds[re.sub(r"\[\d+\]|\(deleted\)| ", "", link)] += 1
    assert len(groups) <= 1 and kinds["cgroup files"] <= 4 + 15, (groups, kinds)
    kinds.pop("cgroup files", None)
    return kinds


def test_one_handler_runs_job_after_job_and_keeps_nothing(server_factory):
    s = server_factory("--policy", ABLATION, "--max-inflight", "1")
    assert s.run({"code": "result = 1"})[1]["result"] == 1
    wait_for(s, "inflight", 0)
    handlers = s.health()["handlers"]
    assert len(handlers) == 1
    first = fd_kinds(handlers[0])
    for job, status, code in OUTCOMES:
        http, doc = s.run(job)
        assert doc["status"] == status and (doc.get("error") or {}).get("code") == code, (job, doc.get("error"))
        wait_for(s, "inflight", 0)
        h = s.health()
        assert h["handlers"] == handlers, f"the handler was replaced after {code or 'ok'}"
        assert fd_kinds(handlers[0]) == first, f"descriptors left in the handler after {code or 'ok'}"
    now, want, _ = s.settled()
    assert now == want


def test_a_zygote_replacement_retires_the_handlers_holding_it(server_factory):
    """Two handlers, both forked while the first zygote served: the third
    job retires that zygote as it is dispatched; the idle handler goes at
    once, the busy one after its job, and the retired zygote then exits."""
    s = server_factory("--policy", ABLATION, "--max-inflight", "2", "--jobs-per-zygote", "3")
    out = {}
    threads = [threading.Thread(target=lambda i=i: out.update({i: s.run({"code": SLOW})})) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[i][1]["status"] for i in range(2)] == ["ok", "ok"]
    wait_for(s, "inflight", 0)
    h0 = s.health()
    old_zygote, old_handlers = h0["zygotes"][0], h0["handlers"]
    assert len(old_handlers) == 2
    assert s.run({"code": "result = 3"})[1]["result"] == 3
    wait_for(s, "inflight", 0)
    now, want, _ = s.settled()
    assert now == want
    h1 = s.health()
    assert h1["replaced"] == 1 and h1["zygotes"] != [old_zygote]
    deadline = time.time() + 10
    while any(map(alive, [old_zygote, *old_handlers])) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, old_handlers)), "a handler of the old zygote was kept"
    assert not alive(old_zygote), "the retired zygote was kept alive (a handler still held its socket)"
    assert s.run({"code": "result = 4"})[1]["result"] == 4


def test_an_audits_handler_is_replaced(server_factory):
    s = server_factory("--max-inflight", "1")
    assert s.run({"code": "result = 1"})[1]["result"] == 1
    wait_for(s, "inflight", 0)
    handler = s.health()["handlers"][0]
    status, _, _ = s.request("POST", "/v1/audit", b"", {"Content-Length": "0"})
    assert status == 200
    wait_for(s, "inflight", 0)
    deadline = time.time() + 10  # it exits once the server closes its channel, then is reaped
    while handler in s.health()["handlers"] and time.time() < deadline:
        time.sleep(0.05)
    now, want, _ = s.settled()
    assert now == want and handler not in now
    assert s.run({"code": "result = 2"})[1]["result"] == 2


def test_a_killed_handler_is_replaced(server_factory):
    s = server_factory("--policy", ABLATION, "--max-inflight", "1")
    s.expect_handler_death = True
    assert s.run({"code": "result = 1"})[1]["result"] == 1
    wait_for(s, "inflight", 0)
    handler = s.health()["handlers"][0]
    os.kill(handler, signal.SIGKILL)
    deadline = time.time() + 10
    while handler in s.health()["handlers"] and time.time() < deadline:
        time.sleep(0.05)
    assert handler not in s.health()["handlers"]
    # the server removed the job group the dead handler kept between jobs (v1)
    assert not [g for g in s.iso.job_groups() if f"/job-{handler}-" in g]
    # its slot is free again: the one slot runs the next job in a new handler
    assert s.run({"code": "result = 2"})[1]["result"] == 2
    wait_for(s, "inflight", 0)
    assert s.health()["handlers"] not in ([], [handler])


@pytest.mark.skipif(cgroup_version() != 1, reason="cgroup v1 only: on v2 each job is cloned into a group made ahead")
def test_on_v1_a_handler_reuses_its_job_group_with_fresh_limits_and_counters(server_factory):
    """cgroup v1: the handler's group is kept for its next job (no rmdir and
    mkdir per job): one group per handler, named after it, empty between
    jobs; each job gets its own limits in it (a rise too, which v1 only
    takes memsw first) and counters that start over."""
    s = server_factory("--policy", ABLATION, "--max-inflight", "1")
    assert s.run({"code": "result = 1"})[1]["result"] == 1
    wait_for(s, "inflight", 0)
    handler = s.health()["handlers"][0]
    parent = CG_ROOT / "memory" / s.iso.parent
    groups = sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith("job-"))
    assert len(groups) == 1 and groups[0].startswith(f"job-{handler}-"), groups
    group = parent / groups[0]
    assert (group / "cgroup.procs").read_text() == ""

    def limits_while_running(mb, pids=64, cpu=100):
        out = {}
        limits = {"memory_mb": mb, "pids": pids, "cpu_percent": cpu, "wall_ms": 3000}
        t = threading.Thread(target=lambda: out.update(r=s.run({"code": SLOW, "limits": limits})))
        t.start()
        deadline = time.time() + 10
        while (group / "cgroup.procs").read_text() == "" and time.time() < deadline:
            time.sleep(0.01)
        seen = (int((group / "memory.limit_in_bytes").read_text()),
                int((group / "memory.memsw.limit_in_bytes").read_text()),
                int((CG_ROOT / "pids" / s.iso.parent / group.name / "pids.max").read_text()),
                int((CG_ROOT / "cpu" / s.iso.parent / group.name / "cpu.cfs_quota_us").read_text()))
        t.join()
        assert out["r"][1]["status"] == "ok", out["r"][1].get("error")
        return seen

    assert limits_while_running(64) == (64 << 20, 64 << 20, 64, 100000)
    assert limits_while_running(512, 32, 50) == (512 << 20, 512 << 20, 32, 50000)  # a rise
    assert limits_while_running(512, 32, 50) == (512 << 20, 512 << 20, 32, 50000)  # the same (not rewritten)
    assert limits_while_running(32) == (32 << 20, 32 << 20, 64, 100000)
    # counters start over: peak memory and cpu of a big job do not follow the next one
    big = s.run({"code": "a = bytearray(40 << 20)\nn = 0\nfor i in range(3_000_000): n += i\nresult = len(a)"})[1]
    small = s.run({"code": "result = 1"})[1]
    assert big["metrics"]["peak_memory_bytes"] >= 40 << 20
    assert small["metrics"]["peak_memory_bytes"] < 20 << 20, small["metrics"]
    assert small["metrics"]["cpu_ms"] < big["metrics"]["cpu_ms"] / 2, (small["metrics"], big["metrics"])
    # the verdict counters too: after an OOM kill and a pids cap, honest jobs are not blamed
    assert s.run({"code": "a = bytearray(600 << 20)", "limits": {"wall_ms": 3000}})[1]["error"]["code"] == "MEMORY_LIMIT"
    after_oom = s.run({"code": "raise MemoryError('mine')"})[1]
    assert after_oom["error"]["code"] == "RUNTIME_ERROR", after_oom["error"]
    bomb = "import os\nfor _ in range(200):\n    os.fork()"
    assert s.run({"code": bomb, "limits": {"wall_ms": 3000}})[1]["error"]["code"] == "PIDS_LIMIT"
    forks = "import os\npids = [os.fork() for _ in range(3)]\nif 0 in pids: os._exit(0)\nfor p in pids: os.waitpid(p, 0)\nresult = 3"
    assert s.run({"code": forks})[1]["result"] == 3
    wait_for(s, "inflight", 0)
    assert s.health()["handlers"] == [handler]
    assert sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith("job-")) == groups


def test_a_stray_signal_to_a_handler_does_not_cut_its_job(server_factory):
    """Only the server stops a handler (EOF on its channel): SIGINT from a
    terminal reaches the whole process group, and a graceful shutdown
    still answers the running jobs."""
    s = server_factory("--policy", ABLATION, "--max-inflight", "1")
    assert s.run({"code": "result = 1"})[1]["result"] == 1
    wait_for(s, "inflight", 0)
    handler = s.health()["handlers"][0]
    os.kill(handler, signal.SIGTERM)  # idle
    out = {}
    t = threading.Thread(target=lambda: out.update(r=s.run({"code": SLOW, "limits": {"wall_ms": 3000}})))
    t.start()
    wait_for(s, "inflight", 1)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):  # busy
        os.kill(handler, sig)
    t.join()
    assert out["r"][1]["status"] == "ok" and out["r"][1]["result"] == 1, out["r"][1].get("error")
    wait_for(s, "inflight", 0)
    assert s.health()["handlers"] == [handler]
    # the job does not inherit the ignored signals
    status, doc = s.run({"code": "import signal\nresult = [int(signal.getsignal(x)) for x in "
                                 "(signal.SIGTERM, signal.SIGHUP)]"})
    assert doc["result"] == [int(signal.SIG_DFL)] * 2, doc
