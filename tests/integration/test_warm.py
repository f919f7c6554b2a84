"""Issue 11, warm mode: `pycell serve` and its zygotes.

Every job forked from a zygote must be as isolated as a cold one: fresh
pid/net/ipc/uts/mount namespaces, a fresh workdir, its own cgroup, no
capabilities, both seccomp stages; nothing it does reaches the next job or
the zygote. Kernel-layer checks run under tests/policies/ablation.json (no
Python layer), as the cold ones do. Each server is stopped by the test that
started it, which then checks that nothing is left behind."""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import PYCELL, REPO, run_job
from resctl import IS_ROOT, Isolated, children

ABLATION = str(REPO / "tests" / "policies" / "ablation.json")
CGROUP_V1 = Path("/sys/fs/cgroup/memory/pycell")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class WarmServer:
    def __init__(self, *args, env=None):
        self.dir = tempfile.mkdtemp(prefix="pycell-warm-")
        self.sock = os.path.join(self.dir, "s.sock")
        self.proc = subprocess.Popen([PYCELL, "serve", "--socket", self.sock, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                out, err = self.proc.communicate(timeout=5) if self.proc.poll() is not None else ("", "")
                self.stop()
                pytest.fail(f"pycell serve did not start: {err}")
            time.sleep(0.02)
        # bound under a temporary name and renamed once listening: nothing else is left
        assert os.listdir(self.dir) == ["s.sock"], os.listdir(self.dir)

    def request(self, method, path, body=None, headers=None):
        c = UnixHTTP(self.sock)
        c.request(method, path, body, headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def run(self, job):
        status, _, data = self.request("POST", "/run", json.dumps(job))
        doc = json.loads(data)
        return status, doc

    def health(self):
        status, _, data = self.request("GET", "/health")
        assert status == 200
        return json.loads(data)

    def settled(self, timeout=10):
        """(children, expected, health): the server's children once exited
        handlers are reaped (on SIGCHLD, a moment after their channel
        closes), against its pool zygotes and live handlers as /health lists
        them (docs/warm.md)."""
        deadline = time.time() + timeout
        while True:
            h = self.health()
            want = set(h["zygotes"]) | set(h["handlers"])
            now = children(self.proc.pid)
            if now == want or time.time() > deadline:
                return now, want, h
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr = self.proc.stderr.read() if self.proc.stderr else ""
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        assert not os.path.exists(self.sock), "the socket file was left behind"
        os.rmdir(self.dir)


def our_cgroups():
    if not CGROUP_V1.is_dir():
        return set()
    return {p.name for p in CGROUP_V1.iterdir() if p.is_dir() and p.name.startswith("job-")}


def descendants(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    kids = {}
    for line in out.split("\n"):
        if line.strip():
            p, pp = map(int, line.split())
            kids.setdefault(pp, []).append(p)
    seen, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            seen.append(k)
            todo.append(k)
    return seen


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    # A cgroup parent of its own: other test runs on this machine make and
    # remove job groups under the shared one at the same time.
    iso = Isolated(tmp_path_factory.mktemp("ablation"))
    s = WarmServer("--policy", ABLATION, env=iso.env)
    yield s
    pid = s.proc.pid
    s.stop()
    assert not descendants(pid)
    left = iso.job_groups()
    iso.cleanup()
    assert left == [], "job cgroups were left behind"


@pytest.fixture(scope="module")
def default():
    s = WarmServer()
    yield s
    s.stop()


# ---------------------------------------------------------------- contract

def test_health_and_a_job_with_the_cold_contract(default):
    h = default.health()
    assert h["status"] == "ok" and h["pool"] >= 1
    job = {"id": "j1", "code": "import json\nprint(json.dumps([1]))\nresult = {'x': 2}"}
    status, warm = default.run(job)
    assert status == 200
    assert warm["status"] == "ok" and warm["result"] == {"x": 2} and warm["stdout"] == "[1]\n"
    assert warm["metrics"]["warm"] is True
    cold = run_job(job).json
    assert "warm" not in cold["metrics"]
    assert set(warm) == set(cold)
    # sandbox_ms times a cold sandbox up to pid 1's fork of the job
    # process; a warm job's process was forked before the job arrived.
    assert "sandbox_ms" in cold["metrics"] and "sandbox_ms" not in warm["metrics"]
    assert set(warm["metrics"]) - {"warm"} == set(cold["metrics"]) - {"sandbox_ms"}
    assert warm["limits"] == cold["limits"]
    assert warm["code_sha256"] == cold["code_sha256"]


@pytest.mark.parametrize("code,expected", [
    ("while True: pass", "TIMEOUT"),
    ("print('x' * 5_000_000)", "OUTPUT_LIMIT"),
    ("a = bytearray(600 * 1024 * 1024)", "MEMORY_LIMIT"),
    ("import os", "SECURITY_ERROR"),
    ("raise ValueError('no')", "RUNTIME_ERROR"),
    ("def f(:", "SYNTAX_ERROR"),
])
def test_limits_and_errors_hold(default, code, expected):
    status, doc = default.run({"code": code, "limits": {"wall_ms": 1500}})
    assert status == 200
    assert doc["status"] == "error" and doc["error"]["code"] == expected, doc["error"]
    assert doc["metrics"]["warm"] is True
    # the zygote survived: the next job runs
    assert default.run({"code": "result = 1"})[1]["result"] == 1


def test_invalid_job_is_a_400_with_the_result_document(default):
    status, doc = default.run({"code": "result = 1", "bogus": 1})
    assert status == 400
    assert doc["error"]["code"] == "INVALID_JOB"


def test_http_errors(default):
    assert default.request("GET", "/nope")[0] == 404
    assert default.request("GET", "/run")[0] == 405
    for head, expected in [
        (b"Content-Length: 9437184\r\n", b"HTTP/1.1 413"),  # past the policy's max_job_bytes (8 MiB)
        (b"", b"HTTP/1.1 411"),                               # no Content-Length
        (b"Transfer-Encoding: chunked\r\n", b"HTTP/1.1 501"),
    ]:
        s = socket.socket(socket.AF_UNIX)
        s.connect(default.sock)
        s.sendall(b"POST /run HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
        assert s.recv(100).startswith(expected)
        s.close()


def test_run_server_client_form(default, tmp_path):
    for job, rc, status in [({"code": "result = 6 * 7"}, 0, "ok"), ({"code": "1 / 0"}, 1, "error"),
                            ({"code": "x", "nope": 1}, 2, "error")]:
        path = tmp_path / "job.json"
        path.write_text(json.dumps(job))
        p = subprocess.run([PYCELL, "run", "--server", default.sock, str(path)], capture_output=True, text=True)
        assert p.returncode == rc, p
        doc = json.loads(p.stdout)
        assert doc["status"] == status and doc["metrics" if rc != 2 else "id"] is not False
    p = subprocess.run([PYCELL, "run", "--server", str(tmp_path / "none.sock"), "-"], input="{}",
                       capture_output=True, text=True)
    assert p.returncode == 2 and "cannot reach the server" in p.stderr


def test_files_are_placed_in_a_fresh_workdir(default):
    status, doc = default.run({"code": "result = open('a.txt').read()", "files": {"a.txt": "hello"}})
    assert doc["result"] == "hello"


def test_each_job_gets_the_policys_builtins_bound_to_its_own_guard(default):
    # The zygote builds the policy's builtins once (pycell_guard.prepare_builtins);
    # every job still gets the import hook of its own guard (its own grants)
    # and the guarded open, however many jobs came before.
    code = ("import threading\ntry:\n    open('/etc/passwd')\n    o = 'opened'\n"
            "except PermissionError as e:\n    o = str(e)\nresult = [o, hasattr(threading, 'Thread'), type(len).__name__]")
    for grant in (True, False, True, False):
        doc = default.run({"code": code, "imports": ["threading"] if grant else []})[1]
        if grant:
            assert doc["status"] == "ok", doc
            assert "limited to /workspace" in doc["result"][0]
            assert doc["result"][1:] == [True, "builtin_function_or_method"]
        else:
            assert doc["error"]["code"] == "SECURITY_ERROR"
            assert "import_not_allowed:threading" in doc["error"]["message"]


# --------------------------------------------------------------- isolation

def test_workdir_tmp_and_shm_do_not_survive(ablation):
    write = ("import os\nfor d in ('/workspace', '/tmp', '/dev/shm'):\n"
             "    open(d + '/left', 'w').write('x')\nresult = sorted(os.listdir('/workspace'))")
    assert ablation.run({"code": write})[1]["result"] == ["left"]
    read = "import os\nresult = [os.path.exists(d + '/left') for d in ('/workspace', '/tmp', '/dev/shm')]"
    assert ablation.run({"code": read})[1]["result"] == [False, False, False]


def test_module_state_and_sys_modules_do_not_survive(ablation):
    poison = ("import json, sys\njson.dumps = None\nsys.modules['evil'] = 1\nsys.path.insert(0, '/tmp')\n"
              "import threading\nt = threading.Thread(target=lambda: __import__('time').sleep(30))\nt.start()\n"
              "result = 1")
    assert ablation.run({"code": poison})[1]["result"] == 1
    check = ("import json, sys\nresult = [json.dumps is not None, 'evil' in sys.modules, sys.path[0] == '/tmp',"
             " __import__('threading').active_count()]")
    assert ablation.run({"code": check})[1]["result"] == [True, False, False, 1]


def test_kernel_layers_inside_a_warm_job(ablation):
    code = r"""
import os, socket
st = dict(l.split(':\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\t' in l)
caps = [st[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')]
st1 = dict(l.split(':\t', 1) for l in open('/proc/1/status').read().splitlines() if ':\t' in l)
leader_caps = [st1[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')]
procs = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); port = s.getsockname()[1]
c = socket.create_connection(('127.0.0.1', port), timeout=1)
try:
    socket.create_connection(('1.1.1.1', 53), timeout=1); out = 'reached'
except OSError as e:
    out = type(e).__name__
try:  # writable by the kernel's rules, fenced by Landlock (as cold: test_kernel_layers)
    open('/proc/self/attr/current', 'w').write('x'); ll = 'written'
except OSError as e:
    ll = e.errno
result = {'pid': os.getpid(), 'procs': procs, 'caps': caps, 'leader_caps': leader_caps,
          'nnp': st['NoNewPrivs'].strip(),
          'seccomp': st['Seccomp'].strip(), 'filters': int(st['Seccomp_filters']), 'uid': os.getuid(),
          'host': socket.gethostname(), 'outside': out, 'cwd': os.getcwd(),
          'cgroup': open('/proc/self/cgroup').read().strip(), 'landlock': ll}
"""
    status, doc = ablation.run({"code": code})
    r = doc["result"]
    assert doc["status"] == "ok", doc
    assert r["pid"] == 2 and r["procs"] == [1, 2]
    assert r["caps"] == ["0000000000000000"] * 5
    # pid 1, the job's leader, shares the zygote's memory: it holds nothing either
    # (the zygote keeps only its own three capabilities in its bounding set)
    assert r["leader_caps"] == ["0000000000000000"] * 5
    assert r["nnp"] == "1" and r["seccomp"] == "2" and r["filters"] >= 2  # exec filter + policy filter
    assert r["uid"] == 1000 and r["host"] == "pycell"
    assert r["outside"] != "reached" and r["cwd"] == "/workspace"
    assert all(line.endswith(":/") for line in r["cgroup"].splitlines()), r["cgroup"]
    cold = run_job({"code": "result = 1"}, "--policy", ABLATION).json
    for layers in (doc["layers"], cold["layers"]):
        layers["seccomp"].pop("cached")  # built once per zygote; cold runs hit the BPF cache
    assert doc["layers"] == cold["layers"]
    if doc["layers"]["landlock"]["applied"]:
        assert r["landlock"] == 13  # EACCES


@pytest.mark.parametrize("code", [
    # exec filter: no binary runs, ever (subprocess is no audit tripwire)
    "import subprocess\nsubprocess.run(['/usr/bin/python3', '-c', '1'])",
    # policy filter: socket families beyond unix/inet (netlink, packet)
    "import socket\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
    "import socket\nsocket.if_nameindex()",
    # the C audit hook's tripwire
    "import os\nos.execv('/usr/bin/python3', ['python3'])",
])
def test_seccomp_holds_in_warm_jobs_as_in_cold(ablation, code):
    status, doc = ablation.run({"code": code})
    cold = run_job({"code": code}, "--policy", ABLATION).json
    assert doc["status"] == "error"
    assert doc["error"]["code"] == cold["error"]["code"]
    assert doc["error"]["message"] == cold["error"]["message"]
    assert "Operation not permitted" in doc["error"]["message"] or doc["error"]["code"] == "SECURITY_ERROR"
    assert ablation.run({"code": "result = 1"})[1]["result"] == 1


def test_concurrent_jobs_do_not_see_each_other(ablation):
    code = ("import os, time\nopen('/tmp/mine', 'w').write(str(input_data))\ntime.sleep(0.5)\n"
            "result = [sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), open('/tmp/mine').read(),"
            " os.listdir('/tmp')]")
    out = {}

    def go(i):
        out[i] = ablation.run({"code": code, "input": {"i": i + 1}})[1]

    ts = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i in range(3):
        assert out[i]["result"] == [[1, 2], str({"i": i + 1}), ["mine"]], out[i]


def test_a_job_cannot_reach_its_leader_which_shares_the_zygotes_memory(ablation):
    # The job's pid 1 (its leader) runs in the zygote's memory (CLONE_VM):
    # reading or writing it would reach the zygote, which keeps
    # CAP_SYS_ADMIN in its user namespace and makes every later job. The
    # attack through /proc (ptrace itself is a seccomp kill, tested with the
    # never-allowed families): the memory is not dumpable, so the kernel's
    # ptrace access check refuses even the same uid without capabilities.
    code = r"""
import os
out = {}
for name, mode in (('mem', os.O_RDONLY), ('mem', os.O_RDWR), ('maps', os.O_RDONLY), ('environ', os.O_RDONLY),
                   ('auxv', os.O_RDONLY), ('pagemap', os.O_RDONLY)):
    try:
        fd = os.open(f'/proc/1/{name}', mode)
        try:
            out[f'{name}:{mode}'] = 'read %d bytes' % len(os.pread(fd, 4096, 0x400000))
        except OSError as e:
            out[f'{name}:{mode}'] = 'opened, read %d' % e.errno
    except OSError as e:
        out[f'{name}:{mode}'] = e.errno
for link in ('exe', 'cwd', 'root', 'fd'):
    try:
        out[link] = os.readlink(f'/proc/1/{link}') if link != 'fd' else os.listdir('/proc/1/fd')
    except OSError as e:
        out[link] = e.errno
st = dict(l.split(':\t', 1) for l in open('/proc/1/status').read().splitlines() if ':\t' in l)
result = {'tries': out, 'leader': st['Name'].strip(), 'uid': st['Uid'].split()[0], 'me': os.getuid()}
"""
    for _ in range(2):  # a fresh zygote's first spare, then a later one
        status, doc = ablation.run({"code": code})
        assert doc["status"] == "ok", doc
        r = doc["result"]
        assert r["uid"] == str(r["me"])  # same uid: only dumpability and capabilities stand in the way
        assert r["tries"] == {k: 13 for k in r["tries"]}, r  # EACCES, every one
    # Seen from the host: proc gives a non-dumpable process's files to root,
    # a dumpable one's to its own uid (the zygote's is never root: a leased
    # one, or the rootless caller's). The zygote's prefault probe (a fork of
    # it that makes itself dumpable to read its own pagemap) left the
    # zygote as it was.
    for zpid in ablation.health()["zygotes"]:
        assert os.stat(f"/proc/{zpid}/mem").st_uid == 0


def test_a_warm_job_takes_no_uid_lease_of_its_own(tmp_path):
    # A warm job runs as its zygote's uid (docs/warm.md, "What a job
    # shares"): a per-job lease would be work for nothing.
    iso = Isolated(tmp_path)
    s = WarmServer("--policy", ABLATION, "--pool", "1", env=iso.env)
    try:
        zygote_leases = iso.leases()
        assert len(zygote_leases) == (1 if IS_ROOT else 0)
        during = []
        t = threading.Thread(target=lambda: during.append(
            s.run({"code": "import time\ntime.sleep(0.5)\nresult = 1"})[1]["result"]))
        t.start()
        time.sleep(0.25)
        seen = iso.leases()
        t.join()
        assert during == [1] and seen == zygote_leases
    finally:
        s.stop()
        iso.cleanup()
    assert iso.leases() == []


def test_zygote_holds_nothing_of_earlier_jobs(ablation):
    secret = "s3cr3t-" + os.urandom(6).hex()
    ablation.run({"code": f"x = {secret!r}\nimport sys\nsys.modules['json'].SECRET = x\nresult = 1"})
    zpids = ablation.health()["zygotes"]
    for zpid in zpids:
        # the zygote is the host-side child of the server's sandbox child;
        # read its memory from the host (root) and look for the secret.
        maps = Path(f"/proc/{zpid}/maps").read_text().splitlines()
        found = False
        with open(f"/proc/{zpid}/mem", "rb", buffering=0) as mem:
            for line in maps:
                addr, perms = line.split()[:2]
                if "r" not in perms or "w" not in perms:
                    continue
                lo, hi = (int(x, 16) for x in addr.split("-"))
                try:
                    mem.seek(lo)
                    if secret.encode() in mem.read(hi - lo):
                        found = True
                except OSError:
                    pass
        assert not found


# ------------------------------------------------------------- replacement

def test_zygote_replaced_after_n_jobs_and_on_anomaly(tmp_path):
    iso = Isolated(tmp_path)
    s = WarmServer("--policy", ABLATION, "--jobs-per-zygote", "3", env=iso.env)
    try:
        first = s.health()["zygotes"]
        for _ in range(3):
            assert s.run({"code": "result = 1"})[1]["result"] == 1
        h = s.health()
        assert h["replaced"] >= 1 and h["zygotes"] != first
        # anomaly: the zygote dies under the server; the next job still runs
        os.kill(h["zygotes"][0], signal.SIGKILL)
        time.sleep(0.2)
        status, doc = s.run({"code": "result = 2"})
        if doc.get("status") != "ok":  # the one job that met the dead zygote is reported as ours
            assert doc["error"]["code"] == "INTERNAL_ERROR"
            status, doc = s.run({"code": "result = 2"})
        assert doc["result"] == 2
        h2 = s.health()
        assert h2["replaced"] > h["replaced"] and h2["zygotes"][0] != h["zygotes"][0]
    finally:
        pid = s.proc.pid
        s.stop()
    assert "stopped after" in s.stderr
    assert not descendants(pid)
    left = iso.job_groups()
    iso.cleanup()
    assert left == []


def test_sigterm_finishes_the_job_in_flight():
    s = WarmServer("--policy", ABLATION)
    out = {}
    t = threading.Thread(target=lambda: out.update(doc=s.run({"code": "import time\ntime.sleep(0.7)\nresult = 'done'"})[1]))
    t.start()
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    t.join()
    s.stop()
    assert out["doc"]["result"] == "done"


@pytest.mark.parametrize("code,expected", [
    # a fork bomb meets the job's pids cap, the pool survives
    ("import os\nfor _ in range(200):\n    os.fork()", "PIDS_LIMIT"),
    # the job kills itself
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", None),
])
def test_a_job_that_dies_badly_does_not_take_the_pool_down(ablation, code, expected):
    status, doc = ablation.run({"code": code, "limits": {"wall_ms": 3000}})
    cold = run_job({"code": code, "limits": {"wall_ms": 3000}}, "--policy", ABLATION).json
    assert doc["status"] == "error"
    assert doc["error"]["code"] == cold["error"]["code"]
    if expected:
        assert doc["error"]["code"] == expected
    else:
        assert doc["signal"] == cold["signal"] == 9
    assert ablation.run({"code": "result = 1"})[1]["result"] == 1


def test_policy_change_replaces_the_zygotes(tmp_path):
    policy = tmp_path / "p.json"
    base = {"name": "warm-test", "extends": str(REPO / "policy" / "default.json")}
    policy.write_text(json.dumps(dict(base, python={"checks": False})))
    s = WarmServer("--policy", str(policy), "--pool", "2")
    try:
        assert s.run({"code": "import os\nresult = os.getpid()"})[1]["result"] == 2
        before = s.health()
        policy.write_text(json.dumps(dict(base, python={"checks": True})))
        status, doc = s.run({"code": "import os\nresult = os.getpid()"})
        assert doc["error"]["code"] == "SECURITY_ERROR"
        after = s.health()
        assert after["replaced"] >= before["replaced"] + 2
        assert set(after["zygotes"]).isdisjoint(before["zygotes"])
    finally:
        s.stop()


def test_a_fork_bomb_does_not_starve_a_concurrent_job(ablation):
    # each bomb holds its whole pids cap while the honest job forks
    bomb = ("import os, time\nfor _ in range(200):\n    try:\n        if os.fork() == 0:\n"
            "            time.sleep(2)\n            os._exit(0)\n    except OSError:\n        break\ntime.sleep(1.5)")
    honest = ("import os, time\ntime.sleep(0.4)\nkids = []\nfor _ in range(20):\n    p = os.fork()\n"
              "    if p == 0:\n        os._exit(0)\n    kids.append(p)\nfor p in kids:\n    os.waitpid(p, 0)\n"
              "result = len(kids)")
    out = {}

    def go(name, code):
        out[name] = ablation.run({"code": code, "limits": {"wall_ms": 4000}})[1]

    ts = [threading.Thread(target=go, args=(n, c)) for n, c in
          (("bomb1", bomb), ("bomb2", bomb), ("honest", honest))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out["honest"]["status"] == "ok" and out["honest"]["result"] == 20, out["honest"]["error"]
    # a bomb that handles its EAGAIN ends ok, as it does cold
    cold = run_job({"code": bomb, "limits": {"wall_ms": 4000}}, "--policy", ABLATION).json
    for b in ("bomb1", "bomb2"):
        assert out[b]["status"] == cold["status"] and out[b]["error"] == cold["error"]


def test_a_job_dies_with_its_handler():
    """Cold jobs die with their supervisor (parent-death signal); a warm job's
    leader watches the job's sync socket for the same."""
    s = WarmServer("--policy", ABLATION)
    try:
        zygote = s.health()["zygotes"][0]
        c = socket.socket(socket.AF_UNIX)
        c.connect(s.sock)
        body = json.dumps({"code": "import time\ntime.sleep(30)", "limits": {"wall_ms": 60000}}).encode()
        c.sendall(b"POST /run HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        deadline = time.time() + 10
        while len(descendants(zygote)) < 4 and time.time() < deadline:  # spare pair + the job's pair
            time.sleep(0.05)
        handler = [p for p in descendants(s.proc.pid) if p != zygote and p not in descendants(zygote)]
        assert len(handler) == 1
        os.kill(handler[0], signal.SIGKILL)
        c.close()
        deadline = time.time() + 5
        while len(descendants(zygote)) > 2 and time.time() < deadline:
            time.sleep(0.05)
        assert len(descendants(zygote)) == 2  # only the next spare is left
    finally:
        s.stop()
        # the killed handler could not remove its job's cgroup: what `pycell gc` is for
        subprocess.run([PYCELL, "gc"], capture_output=True)


def _mounts(mountinfo):
    """(mount point, fs type, options without the host ids and sizes), each once."""
    out = set()
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, sfields = pre.split(), post.split()
        opts = ",".join(o for o in sfields[2].split(",") if not o.startswith(("uid=", "gid=", "size=", "nr_inodes=")))
        out.add((fields[4], fields[5], sfields[0], opts))
    return out


def test_audit_evidence_of_a_first_warm_job_matches_cold():
    """The audit's evidence job (runtime/audit/evidence.py: namespaces, ids,
    mounts, fds, rlimits, refused operations), as the *first* job of a fresh
    zygote, against the same job cold. Allowed differences: namespace ids and
    the leased host id (fresh per job/zygote), RLIMIT_NPROC (docs/warm.md),
    proc stacked over the zygote's own (same options)."""
    code = (REPO / "runtime" / "audit" / "evidence.py").read_text()
    s = WarmServer("--policy", ABLATION)
    try:
        status, warm = s.run({"code": code})
    finally:
        s.stop()
    cold = run_job({"code": code}, "--policy", ABLATION).json
    assert warm["status"] == cold["status"] == "ok", (warm["error"], cold["error"])
    w, c = warm["result"], cold["result"]
    assert w["try"] == c["try"]
    assert w["fds"] == c["fds"] and w["uid"] == c["uid"] and w["cgroup"] == c["cgroup"]
    for k in ("net_dev", "route", "ipv6_route", "root_statvfs_ro"):
        assert w[k] == c[k], k
    assert set(w["ns"]) == set(c["ns"])
    for k in ("uid_map", "gid_map"):
        assert w[k].split()[0::2] == c[k].split()[0::2] == ["1000", "1"]
    assert {k: v for k, v in w["rlimits"].items() if k != "nproc"} == \
        {k: v for k, v in c["rlimits"].items() if k != "nproc"}
    ws, cs = (dict(line.split(":\t", 1) for line in d["status"].splitlines()) for d in (w, c))
    for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
              "Seccomp", "Seccomp_filters", "SigIgn", "SigBlk", "SigCgt", "NSpid", "PPid"):
        assert ws[k] == cs[k], k
    assert _mounts(w["mountinfo"]) == _mounts(c["mountinfo"])


def test_a_job_runs_with_the_garbage_collector_on(ablation):
    # The shim turns the collector off while it starts and parses the code
    # (pycell_shim.py) and back on for the job (pycell_job.run_job): in a
    # cold and a warm job it is on, and collects on its own as cycles pile up.
    code = ("import gc\nbefore = gc.get_stats()[0]['collections']\n"
            "for _ in range(20000):\n    a = []\n    a.append(a)\n"
            "result = [gc.isenabled(), gc.get_stats()[0]['collections'] > before]")
    cold = run_job({"code": code}, "--policy", ABLATION)
    assert cold.json["status"] == "ok" and cold.json["result"] == [True, True], cold
    status, warm = ablation.run({"code": code})
    assert status == 200 and warm["result"] == [True, True], warm
