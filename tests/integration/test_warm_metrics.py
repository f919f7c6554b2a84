"""Warm mode's `GET /metrics` (Prometheus text) and the systemd unit.

The server answers every request itself (the job handlers it forks hand
it their outcome and document on a pipe) and counts each answer as it
queues it, so a client that got its answer and then scrapes sees its job
counted: the counts here are exact.
Every server is stopped by its test, which checks that nothing is left
behind (socket, processes, job cgroups)."""
import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import PYCELL, REPO
from resctl import Isolated
from test_warm import WarmServer, descendants

UNIT = REPO / "tools" / "pycell.service"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)\})? (\S+)$')


def parse(text):
    """{(name, frozenset(labels)): value}; fails on any malformed line."""
    samples, typed = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[1] in ("HELP", "TYPE"), line
            if parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram"), line
                typed[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        name, labels, value = m.group(1), m.group(3), m.group(5)
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert base in typed, f"{name} has no # TYPE line"
        lab = frozenset(tuple(kv.split("=", 1)) for kv in labels.split(",")) if labels else frozenset()
        v = float(value)
        assert not math.isnan(v)
        key = (name, lab)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = v
    return samples


def L(**kw):
    return frozenset((k, f'"{v}"') for k, v in kw.items())


@pytest.fixture
def server_factory(tmp_path):
    """Servers with a cgroup parent of their own (other suites on this host
    make job groups at the same time): empty once each server has stopped."""
    made = []
    iso = Isolated(tmp_path)

    def make(*args):
        s = WarmServer(*args, env=iso.env)
        s.iso = iso
        made.append(s)
        return s
    yield make
    try:
        for s in made:
            pid = s.proc.pid
            s.stop()  # asserts the socket is gone
            assert not descendants(pid), "processes of the server were left behind"
            # a handler that died (under ASan: its leak check at exit found one)
            assert getattr(s, "expect_handler_death", False) or "ended with status" not in s.stderr, s.stderr
        assert not iso.job_groups(), "job cgroups were left behind"
    finally:
        iso.cleanup()


def scrape(s):
    """GET /metrics (the server answers it itself: never a 503)."""
    status, headers, data = s.request("GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(data.decode())


def test_metrics_count_jobs_exactly(server_factory):
    s = server_factory("--pool", "2", "--max-inflight", "7")
    empty = scrape(s)
    assert empty[("pycell_job_duration_seconds_count", frozenset())] == 0
    assert empty[("pycell_jobs_total", L(status="ok", code=""))] == 0

    for _ in range(2):
        assert s.run({"code": "result = 1"})[1]["status"] == "ok"
    status, doc = s.run({"code": "raise ValueError('no')"})
    assert status == 200 and doc["error"]["code"] == "RUNTIME_ERROR"
    status, doc = s.run({"code": "import os"})
    assert doc["error"]["code"] == "SECURITY_ERROR"
    status, doc = s.run({"cod": "x"})
    assert status == 400 and doc["error"]["code"] == "INVALID_JOB"
    assert s.request("GET", "/nope")[0] == 404
    assert s.request("GET", "/v1/health")[0] == 200
    assert s.request("POST", "/metrics", b"")[0] == 405

    # A handler that has answered is in flight until it says it is done
    # (slow under ASan): scrape until it has, counting the scrapes.
    for n in range(1, 101):
        m = scrape(s)
        if m[("pycell_inflight", frozenset())] == 0:
            break
        time.sleep(0.02)
    jobs = {k[1]: v for k, v in m.items() if k[0] == "pycell_jobs_total"}
    assert jobs == {L(status="ok", code=""): 2, L(status="error", code="RUNTIME_ERROR"): 1,
                    L(status="error", code="SECURITY_ERROR"): 1, L(status="error", code="INVALID_JOB"): 1}
    assert m[("pycell_job_duration_seconds_count", frozenset())] == 5
    buckets = sorted((float(dict(k[1])["le"].strip('"')), v) for k, v in m.items()
                     if k[0] == "pycell_job_duration_seconds_bucket")
    assert buckets[-1] == (math.inf, 5)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    assert 0 < m[("pycell_job_duration_seconds_sum", frozenset())] < 5 * 60
    http = {dict(k[1])["code"]: v for k, v in m.items() if k[0] == "pycell_http_responses_total"}
    # 200: first scrape, 2 ok + RUNTIME_ERROR + SECURITY_ERROR jobs, /v1/health, n - 1 earlier scrapes
    assert http == {'"200"': 5 + n, '"400"': 1, '"404"': 1, '"405"': 1}
    assert m[("pycell_connections_total", frozenset())] == 8 + n
    assert m[("pycell_pool_size", frozenset())] == 2
    assert m[("pycell_zygotes_ready", frozenset())] == 2
    assert m[("pycell_inflight", frozenset())] == 0
    assert m[("pycell_inflight_max", frozenset())] == 7
    assert m[("pycell_busy_rejections_total", frozenset())] == 0
    assert m[("pycell_bad_reports_total", frozenset())] == 0

    again = scrape(s)  # a scrape counts as a 200, never as a job
    assert {k: v for k, v in again.items() if k[0] == "pycell_jobs_total"} == \
        {k: v for k, v in m.items() if k[0] == "pycell_jobs_total"}
    assert again[("pycell_http_responses_total", L(code="200"))] == 6 + n


def raw_request(path, data):
    """A request whose answer may come before it is sent: a full server
    answers 503 at accept, without reading, so sending may fail (EPIPE)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(30)
        c.connect(path)
        try:
            c.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        while chunk := c.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def post_raw(path, job):
    body = json.dumps(job).encode()
    return raw_request(path, b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def wait_for(s, key, value):
    deadline = time.time() + 30
    while s.health()[key] != value:
        assert time.time() < deadline, f"health never showed {key} = {value}"
        time.sleep(0.02)


def test_a_full_server_counts_its_503s(server_factory):
    # one slot and no queue: a job that comes while one runs is refused at once
    s = server_factory("--max-inflight", "1", "--queue", "0", "--jobs-per-zygote", "2")
    out = {}
    t = threading.Thread(target=lambda: out.update(r=s.run({"code": "while True: pass",
                                                             "limits": {"wall_ms": 1500}})))
    t.start()
    wait_for(s, "inflight", 1)
    answer = post_raw(s.sock, {"code": "result = 1"})
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nRetry-After: 1\r\n" in answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "BUSY"
    assert s.request("GET", "/health")[0] == 200  # probes need no slot: never refused
    t.join()
    assert out["r"][1]["error"]["code"] == "TIMEOUT"
    m = scrape(s)
    assert m[("pycell_busy_rejections_total", frozenset())] == 1
    assert m[("pycell_http_responses_total", L(code="503"))] == 1
    assert m[("pycell_jobs_total", L(status="error", code="TIMEOUT"))] == 1
    assert ("pycell_jobs_total", L(status="ok", code="")) not in m  # the refused job never ran
    assert m[("pycell_job_duration_seconds_count", frozenset())] == 1
    assert m[("pycell_job_duration_seconds_bucket", L(le="1"))] == 0  # the timeout took 1.5 s
    # --jobs-per-zygote 2 counts the jobs a zygote was given: the second replaces it
    assert m[("pycell_zygote_replacements_total", frozenset())] == 0
    wait_for(s, "inflight", 0)  # a slot is free once its handler has cleaned up
    assert s.run({"code": "result = 1"})[1]["result"] == 1
    m = scrape(s)
    assert m[("pycell_zygote_replacements_total", frozenset())] == 1
    assert m[("pycell_zygotes_ready", frozenset())] == 1
    assert m[("pycell_zygotes_retiring", frozenset())] in (0, 1)


# ------------------------------------------------------------ systemd unit

def unit_keys():
    keys, section = {}, None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, v = line.split("=", 1)
        keys.setdefault((section, k), []).append(v)
    return keys


def test_unit_keys():
    k = unit_keys()
    assert k[("Service", "ExecStart")] == ["/usr/local/bin/pycell serve --socket /run/pycell/pycell.sock"]
    assert k[("Service", "Restart")] == ["on-failure"]
    assert k[("Service", "RuntimeDirectory")] == ["pycell"]
    assert k[("Service", "RuntimeDirectoryPreserve")] == ["yes"]  # cold runs' uid leases live there
    assert k[("Install", "WantedBy")] == ["multi-user.target"]
    # nothing that would stop namespace creation or add an inherited seccomp filter
    for bad in ("NoNewPrivileges", "RestrictNamespaces", "PrivateUsers", "CapabilityBoundingSet",
                "SystemCallFilter", "SystemCallArchitectures", "ProtectControlGroups",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectClock", "PrivateDevices",
                "RestrictAddressFamilies", "MemoryDenyWriteExecute", "LockPersonality", "User",
                "DynamicUser"):
        assert ("Service", bad) not in k, bad


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path):
    # verify checks that ExecStart's binary exists: point it at the built one
    unit = tmp_path / "pycell.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/pycell", PYCELL))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "pycell.service" not in r.stderr, r.stderr
