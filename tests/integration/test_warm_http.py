"""`pycell serve`'s HTTP side (libmicrohttpd driven from the server's poll
loop): the bounded FIFO queue, a queued client that hangs up, graceful
shutdown with running and queued jobs, request caps and the request
deadline, the loopback TCP listener. Each server is stopped by its test,
which checks that nothing is left behind (socket, processes, job cgroups)."""
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import PYCELL
from resctl import Isolated
from test_warm import ABLATION, WarmServer, descendants
from test_warm_metrics import parse, post_raw, server_factory, wait_for  # noqa: F401 (fixture)

SLOW = "import time\nstart = time.time()\ntime.sleep({s})\nresult = start"


def metrics(s):
    status, _, data = s.request("GET", "/metrics")
    assert status == 200
    return {k[0]: v for k, v in parse(data.decode()).items() if not k[1]}


def submit(s, out, name, job):
    t = threading.Thread(target=lambda: out.update({name: s.run(job)}))
    t.start()
    return t


def test_socket_is_owner_only(server_factory):
    s = server_factory("--policy", ABLATION)
    assert stat.S_IMODE(os.stat(s.sock).st_mode) == 0o600


def test_queue_is_fifo_and_bounded(server_factory):
    """One slot, two queue places, four slow jobs: the fourth is refused
    with 503, the other three run one at a time in the order they came."""
    s = server_factory("--policy", ABLATION, "--max-inflight", "1", "--queue", "2")
    out, threads = {}, []
    for i, (key, value) in enumerate((("inflight", 1), ("queued", 1), ("queued", 2))):
        threads.append(submit(s, out, i, {"code": SLOW.format(s=0.5), "limits": {"wall_ms": 5000}}))
        wait_for(s, key, value)
    m = metrics(s)
    assert m["pycell_queue_depth"] == 2 and m["pycell_queue_max"] == 2 and m["pycell_inflight"] == 1
    answer = post_raw(s.sock, {"code": "result = 'never'"})
    assert answer.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 1\r\n" in answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "BUSY"
    for t in threads:
        t.join()
    docs = [out[i] for i in range(3)]
    assert all(status == 200 and d["status"] == "ok" for status, d in docs), docs
    starts = [d["result"] for _, d in docs]
    assert starts == sorted(starts), "the queue is not first in, first out"
    m = metrics(s)
    assert m["pycell_busy_rejections_total"] == 1 and m["pycell_queue_depth"] == 0
    assert m["pycell_job_duration_seconds_count"] == 3


def test_a_queued_job_whose_client_left_never_runs(server_factory):
    s = server_factory("--policy", ABLATION, "--max-inflight", "1", "--queue", "2")
    out = {}
    t = submit(s, out, "first", {"code": SLOW.format(s=1.0), "limits": {"wall_ms": 5000}})
    wait_for(s, "inflight", 1)
    body = json.dumps({"code": "result = 'ran'"}).encode()
    c = socket.socket(socket.AF_UNIX)
    c.connect(s.sock)
    c.sendall(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    wait_for(s, "queued", 1)
    c.close()
    wait_for(s, "queued", 0)  # dropped while the first job still runs
    assert s.health()["inflight"] == 1
    m = metrics(s)
    assert m["pycell_queue_dropped_total"] == 1
    t.join()
    assert out["first"][1]["status"] == "ok"
    assert s.run({"code": "result = 'next'"})[1]["result"] == "next"
    wait_for(s, "inflight", 0)
    status, _, data = s.request("GET", "/metrics")
    jobs = {k[1]: v for k, v in parse(data.decode()).items() if k[0] == "pycell_jobs_total"}
    assert sum(jobs.values()) == 2, jobs  # the first and the next; the dropped one never ran


def test_sigterm_answers_running_and_queued_jobs_then_leaves_nothing(tmp_path):
    iso = Isolated(tmp_path)
    s = WarmServer("--policy", ABLATION, "--max-inflight", "1", "--queue", "2", env=iso.env)
    out, threads = {}, []
    try:
        for i, (key, value) in enumerate((("inflight", 1), ("queued", 1), ("queued", 2))):
            threads.append(submit(s, out, i, {"code": SLOW.format(s=0.4), "limits": {"wall_ms": 5000}}))
            wait_for(s, key, value)
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while os.path.exists(s.sock) and time.time() < deadline:
            time.sleep(0.01)
        late = socket.socket(socket.AF_UNIX)
        with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
            late.connect(s.sock)  # no new clients once stopping
        late.close()
        for t in threads:
            t.join()
        assert s.proc.wait(timeout=30) == 0
    finally:
        pid = s.proc.pid
        s.stop()
        left = iso.job_groups()
        iso.cleanup()
    assert [out[i][0] for i in range(3)] == [200, 200, 200]
    assert all(out[i][1]["status"] == "ok" for i in range(3))
    assert "stopped after" in s.stderr
    assert not descendants(pid)
    assert not left, "job cgroups were left behind"


def test_a_huge_head_is_refused_and_the_server_carries_on(server_factory):
    """A head past the 32 KiB a connection may hold: libmicrohttpd's 431."""
    s = server_factory("--policy", ABLATION)
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(30)
        c.connect(s.sock)
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 << 10) + b"\r\n\r\n")
        answer = c.recv(200)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert s.health()["status"] == "ok"


def test_a_slow_client_is_cut_off_at_the_request_deadline(server_factory):
    """A client that trickles its head a byte at a time never idles long
    enough for an idle timeout; the request deadline (here 1 s) ends it
    with 408, whatever it sends. Bounded: 200 bytes at 50 ms."""
    s = server_factory("--policy", ABLATION, "--request-timeout", "1")
    c = socket.socket(socket.AF_UNIX)
    c.connect(s.sock)
    c.sendall(b"POST /run HTTP/1.1\r\nHost: x\r\n")
    answer, cut = b"", False
    for _ in range(200):
        try:
            c.sendall(b"X")
            chunk = c.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        except (BrokenPipeError, ConnectionResetError):
            cut = True
            break
        answer += chunk
        if not chunk:
            cut = True
            break
    c.close()
    assert cut, "the server never ended a request that did not arrive in time"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    m = metrics(s)
    assert m["pycell_request_timeouts_total"] == 1
    assert s.run({"code": "result = 1"})[1]["result"] == 1


def free_port(family, host):
    with socket.socket(family) as p:
        p.bind((host, 0))
        return p.getsockname()[1]


@pytest.mark.parametrize("family,host,arg", [(socket.AF_INET, "127.0.0.1", "127.0.0.1:{}"),
                                             (socket.AF_INET6, "::1", "[::1]:{}")])
def test_loopback_tcp_listener(server_factory, family, host, arg):
    port = free_port(family, host)
    s = server_factory("--policy", ABLATION, "--listen-tcp", arg.format(port))
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("POST", "/v1/jobs", json.dumps({"code": "result = 6 * 7"}))
    r = c.getresponse()
    doc = json.loads(r.read())
    c.close()
    assert r.status == 200 and doc["result"] == 42
    assert s.run({"code": "result = 1"})[1]["result"] == 1  # the Unix socket still serves


@pytest.mark.parametrize("addr", ["0.0.0.0:8080", "10.0.0.1:8080", "[::]:8080", "localhost:8080", "127.0.0.1",
                                  "127.0.0.1:99999"])
def test_tcp_listener_is_loopback_only(tmp_path, addr):
    sock = tmp_path / "s.sock"
    p = subprocess.run([PYCELL, "serve", "--socket", str(sock), "--listen-tcp", addr], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2
    assert "loopback address" in p.stderr and addr in p.stderr
    assert not sock.exists()


def test_a_jobs_handler_holds_no_socket_of_the_http_side(server_factory):
    """The handler is forked from the server mid-flight: it must drop the
    listening socket, every client's socket (one it kept would hold that
    client's end-of-file back until the job ends) and libmicrohttpd's epoll."""
    s = server_factory("--policy", ABLATION)
    zygotes = s.health()["zygotes"]
    other = socket.socket(socket.AF_UNIX)  # a client mid-request when the handler is forked
    other.connect(s.sock)
    other.sendall(b"GET /health HTTP/1.1\r\n")
    out = {}
    t = submit(s, out, "slow", {"code": SLOW.format(s=1.5), "limits": {"wall_ms": 5000}})
    wait_for(s, "inflight", 1)

    def fds(pid):
        try:
            return {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except FileNotFoundError:
            return set()
    # the handler holds the job's bootstrap memfd (the server may also be
    # starting a zygote: a rootfs another suite rebuilt counts as a change)
    inside = {p for z in zygotes for p in [z, *descendants(z)]}
    handler = [p for p in descendants(s.proc.pid)
               if p not in inside and any("pycell-bootstrap" in f for f in fds(p))]
    assert len(handler) == 1
    ours = set()  # the listening socket and the accepted ones carry its bound name
    bound = f"{s.sock}.{s.proc.pid}~"  # bound under it, then renamed to the path (serve_listen.c)
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[7] == bound:
            ours.add(f"socket:[{f[6]}]")
    assert len(ours) >= 3  # listening, the mid-request client's, the job's client's
    links = fds(handler[0])
    assert not links & ours, links & ours
    assert "anon_inode:[eventpoll]" not in links
    other.sendall(b"Host: x\r\n\r\n")
    assert other.recv(100).startswith(b"HTTP/1.1 200 ")
    other.close()
    t.join()
    assert out["slow"][1]["status"] == "ok"
