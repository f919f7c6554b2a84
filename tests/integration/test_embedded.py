"""Issue 6 point 3: the embedded interpreter in pycell-init.

The job process (pid 2) hosts Python itself: it stacks the exec filter the
supervisor built (execve, execveat, memfd_create -> EPERM), installs a C audit
hook before Py_Initialize, and starts an isolated interpreter that runs the
shim. Every test here runs with the ablation policy (the shim's Python layer
off) unless it says otherwise, so what stops an attempt is one of these two
layers, and each test names which."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DATASCI_ROOTFS, MUST_WORK, PYCELL, REPO, run_exec, run_job

ABLATION = str(REPO / "tests" / "policies" / "ablation.json")


def job(code, *args, **kw):
    return run_job({"code": code}, "--policy", ABLATION, *args, **kw)


def tripped(r, event):
    """The C audit hook's report: SECURITY_ERROR naming the event."""
    assert r.code == "SECURITY_ERROR", r
    err = r.json["error"]
    assert err["message"] == f"runtime tripwire: {event}", r
    assert err["details"] == {"violations": [f"audit:{event}"], "layer": "audit-hook"}, r


# ------------------------------------------------------------ interpreter

def test_interpreter_is_isolated():
    code = ("import sys\n"
            "result = {'isolated': sys.flags.isolated, 'no_site': sys.flags.no_site,\n"
            "          'ignore_env': sys.flags.ignore_environment, 'no_user_site': sys.flags.no_user_site,\n"
            "          'safe_path': sys.flags.safe_path, 'dont_write_bytecode': sys.dont_write_bytecode,\n"
            "          'path': sys.path, 'site': 'site' in sys.modules, 'executable': sys.executable,\n"
            "          'prefix': sys.prefix, 'version': sys.version_info[:2], 'argv': sys.argv,\n"
            "          'encoding': sys.stdout.encoding}\n")
    r = job(code)
    assert r.json["status"] == "ok", r
    v = r.json["result"]
    assert v["isolated"] == 1 and v["no_site"] == 1 and v["ignore_env"] == 1 and v["no_user_site"] == 1
    assert v["safe_path"] is True and v["dont_write_bytecode"] is True and v["site"] is False
    # Explicit sys.path: stdlib, Debian's dist-packages (numpy), the shim dir; no script dir, no cwd.
    assert v["path"][:3] == ["/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload",
                             "/usr/lib/python3/dist-packages"], v
    assert "/.pycell/shim" in v["path"] and "" not in v["path"] and "/workspace" not in v["path"], v
    assert v["executable"] == "/usr/bin/python3" and v["prefix"] == "/usr" and v["version"] == [3, 11]
    assert v["argv"] == ["/.pycell/shim/pycell_shim.py"] and v["encoding"] == "utf-8"


def test_the_shim_starts_without_modules_the_job_did_not_import():
    """A cold job pays for every module the shim imports before its code
    runs: os (with stat, posixpath and _collections_abc) cost a `pass` job
    about 1 ms. The job's own imports still work, os included."""
    r = job("import sys\nresult = sorted(m for m in ('os', 'posixpath', 'stat', '_collections_abc', 're', 'ast')"
            " if m in sys.modules)")
    assert r.json["status"] == "ok", r
    assert r.json["result"] == [], r
    r = job("import os, sys\nresult = [os.getcwd(), 'os' in sys.modules]")
    assert r.json["result"] == ["/workspace", True], r


def test_stdout_stderr_and_exit_status_as_before():
    r = job("import sys\nprint('out')\nprint('err', file=sys.stderr)\nraise SystemExit(3)")
    assert r.json["stdout"] == "out\n" and r.json["stderr"] == "err\n", r
    assert r.json["exit_code"] == 3, r  # Py_RunMain honours SystemExit


def test_runtime_error_traceback_reaches_stderr():
    r = job("1/0")
    assert r.code == "RUNTIME_ERROR", r
    assert "ZeroDivisionError" in r.json["stderr"], r


def test_job_holds_no_runtime_descriptors():
    # fd 5 (sync socket) and fd 6 (exec filter) are pid 1's, never the job's.
    r = job("import os\nresult = sorted(int(f) for f in os.listdir('/proc/self/fd'))")
    assert r.json["status"] == "ok", r
    assert 5 not in r.json["result"] and 6 not in r.json["result"], r


# ------------------------------------------------------------ exec filter (seccomp)

def test_exec_filter_is_stacked_on_the_policy_filter():
    # pid 1 (pycell-init) runs under the policy filter only; the job process
    # loaded one more. The probe (plain exec mode, no exec filter) sees pid 1's count.
    code = ("def filters(p):\n"
            "    for line in open(p):\n"
            "        if line.startswith('Seccomp_filters:'):\n"
            "            return int(line.split()[1])\n"
            "result = [filters('/proc/1/status'), filters('/proc/self/status')]\n")
    r = job(code)
    assert r.json["status"] == "ok", r
    init_n, job_n = r.json["result"]
    assert init_n >= 1 and job_n == init_n + 1, r
    probe = subprocess.run([PYCELL, "exec", "--policy", ABLATION, "--probe", "--", "status"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode == 0 and "Seccomp_filters:" in probe.stdout:
        n = int(probe.stdout.split("Seccomp_filters:")[1].split()[0])
        assert n == init_n, probe.stdout


def test_exec_bypassing_the_audit_hook_is_refused_by_the_kernel():
    # _posixsubprocess.fork_exec raises no audit event in 3.11, so the C hook
    # never sees this: the forked child reaches execve(2) and the stacked exec
    # filter answers EPERM, which the child reports on the error pipe
    # ("OSError:<errno hex>:"). The job itself finishes normally.
    code = ("import _posixsubprocess, os\n"
            "r, w = os.pipe()\n"
            "pid = _posixsubprocess.fork_exec([b'/usr/bin/python3'], [b'/usr/bin/python3'], True, (w,),\n"
            "    None, None, -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None, False)\n"
            "os.close(w)\n"
            "msg = b''\n"
            "while chunk := os.read(r, 200):\n"
            "    msg += chunk\n"
            "msg = msg.decode()\n"
            "_, st = os.waitpid(pid, 0)\n"
            "result = {'errpipe': msg, 'status': os.waitstatus_to_exitcode(st)}\n")
    r = job(code)
    assert r.json["status"] == "ok", r  # no tripwire: the hook was not involved
    assert r.json["result"]["errpipe"] == "OSError:1:", r  # errno 1 = EPERM from execve
    assert r.json["result"]["status"] == 255, r


def test_memfd_create_is_refused_with_eperm():
    r = job("import os\ntry:\n    os.memfd_create('x')\n    result = 'created'\n"
            "except OSError as e:\n    result = [type(e).__name__, e.errno]\n")
    assert r.json["status"] == "ok", r
    assert r.json["result"] == ["PermissionError", 1], r


def test_subprocess_is_refused_by_the_exec_filter():
    # Not a tripwire (stdlib probes use subprocess and handle OSError): the
    # forked child's execve gets EPERM, reported back as PermissionError.
    r = job("import subprocess\ntry:\n    subprocess.run(['true'])\n    result = 'ran'\n"
            "except OSError as e:\n    result = [type(e).__name__, e.errno]\n")
    assert r.json["status"] == "ok", r
    assert r.json["result"] == ["PermissionError", 1], r


def test_stdlib_probes_that_spawn_degrade_gracefully():
    # platform.processor() runs `uname -p` (Debian's pandas calls it on
    # import), uuid.getnode() tries ifconfig/ip: all fall back on the OSError.
    code = ("import platform, uuid\n"
            "result = [platform.processor(), isinstance(uuid.getnode(), int), platform.system()]\n")
    r = job(code)
    assert r.json["status"] == "ok", r
    assert r.json["result"] == ["", True, "Linux"], r


def test_fork_still_works_for_multiprocessing():
    # fork is not a tripwire and not filtered: multiprocessing's pool needs it;
    # Value/Array go through ctypes from_buffer (audited as ctypes.cdata).
    code = ("import multiprocessing as mp, concurrent.futures as cf\n"
            "v = mp.Value('i', 3)\na = mp.Array('d', [1.0, 2.0])\n"
            "with mp.Pool(2) as p:\n    squares = p.map(abs, range(-3, 3))\n"
            "with cf.ProcessPoolExecutor(2) as ex:\n    more = list(ex.map(abs, [-1, -2]))\n"
            "result = [squares, more, v.value, a[:]]\n")
    r = job(code)
    assert r.json["status"] == "ok", r
    assert r.json["result"] == [[3, 2, 1, 0, 1, 2], [1, 2], 3, [1.0, 2.0]], r


# ------------------------------------------------------------ C audit hook (tripwires)

@pytest.mark.parametrize("code,event", [
    ("import os\nos.execv('/usr/bin/python3', ['python3', '-c', 'pass'])", "os.exec"),
    ("import os\nos.execve('/usr/bin/python3', ['python3'], {})", "os.exec"),
    ("import os\nos.system('true')", "os.system"),
    ("import os\nos.posix_spawn('/usr/bin/true', ['true'], {})", "os.posix_spawn"),
    # os.spawnv is fork + execv in Python: the forked child trips on os.exec.
    ("import os\nos.spawnv(os.P_WAIT, '/usr/bin/true', ['true'])", "os.exec"),
    ("import pty\npty.spawn('/bin/sh')", "pty.spawn"),
    ("import ctypes\nctypes.CDLL('libc.so.6')", "ctypes.dlopen"),
    ("import ctypes\nctypes.pythonapi.Py_GetVersion", "ctypes.dlsym"),
    ("import ctypes\nctypes.string_at(id(0), 8)", "ctypes.string_at"),
    ("import _ctypes\n_ctypes.call_function(1, ())", "ctypes.call_function"),
    ("import _ctypes\n_ctypes.PyObj_FromPtr(id(0))", "ctypes.PyObj_FromPtr"),
    ("import ctypes\nctypes.CDLL(None).getpid()", "ctypes.dlsym"),
])
def test_tripwire(code, event):
    # The hook reports and _exit()s: catching the exception cannot help.
    wrapped = "try:\n" + "".join("    " + line + "\n" for line in code.splitlines()) + \
              "except BaseException:\n    result = 'survived'\n"
    r = job(wrapped)
    tripped(r, event)
    assert r.json["result"] is None, r


def test_import_ctypes_alone_is_fine():
    # ctypes' own import raises ctypes.dlopen(None) (pythonapi = PyDLL(None));
    # numpy imports ctypes, so this must not trip.
    r = job("import ctypes\nresult = ctypes.sizeof(ctypes.c_int)")
    assert r.json["status"] == "ok", r
    assert r.json["result"] == 4


def test_tripwire_in_a_forked_child_ends_the_whole_job():
    # The child trips; the hook kills the rest of the job (kill(-1)), so the
    # parent never writes a second report over the SECURITY_ERROR.
    code = ("import os, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.system('true')\n"
            "    os._exit(0)\n"
            "time.sleep(5)\n"
            "result = 'parent survived'\n")
    r = job(code, timeout=60)
    tripped(r, "os.system")
    assert r.json["metrics"]["wall_ms"] < 4000, r


def test_two_workers_tripping_at_once_leave_one_report():
    # Every pool worker trips at nearly the same moment; one shared flag lets
    # only the first write, so the result pipe holds exactly one document.
    code = ("import multiprocessing as mp, os\n"
            "def bad(x):\n    os.system('true')\n"
            "with mp.Pool(2) as p:\n    p.map(bad, range(8), chunksize=1)\n"
            "result = 'parent survived'\n")
    for _ in range(3):
        tripped(job(code, timeout=60), "os.system")


def test_default_policy_also_trips():
    # With the shim's Python layer on, the C floor still holds (the shim may
    # refuse the import first: either way SECURITY_ERROR).
    r = run_job({"code": "import os\nos.system('true')"})
    assert r.code == "SECURITY_ERROR", r


# ------------------------------------------------------------ rootfs and libpython

def _has_libpython(root):
    return (Path(root) / "usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0").exists()


def test_numpy_imports_in_datasci():
    if not _has_libpython(DATASCI_ROOTFS):
        if MUST_WORK:
            pytest.fail("build/rootfs/datasci has no libpython3.11: run 'make rootfs-test'")
        pytest.skip("build/rootfs/datasci not built with libpython3.11 ('make rootfs-test')")
    r = run_job({"code": "import numpy\nresult = int(numpy.arange(10).sum())", "imports": ["numpy"]},
                "--rootfs", str(DATASCI_ROOTFS))
    assert r.json["status"] == "ok", r
    assert r.json["result"] == 45
    r = run_job({"code": "import pandas as pd\nresult = int(pd.DataFrame({'a': [1, 2, 3]})['a'].sum())",
                 "imports": ["pandas"]}, "--rootfs", str(DATASCI_ROOTFS))
    assert r.json["status"] == "ok", r  # pandas' import-time `uname -p` probe must not trip
    assert r.json["result"] == 6


def test_rootfs_without_matching_libpython_is_refused(tmp_path):
    root = tmp_path / "root"
    for d in ("workspace", "tmp", "dev", "proc", ".pycell", "usr/lib/x86_64-linux-gnu"):
        (root / d).mkdir(parents=True)
    (root / "usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0").write_bytes(b"")
    r = run_job({"code": "pass"}, "--rootfs", str(root))
    assert r.code == "INTERNAL_ERROR", r
    msg = r.json["error"]["message"]
    assert "libpython3.11.so.1.0" in msg and "'libpython3.12.so.1.0'" in msg, msg
    assert "Python 3.11" in msg, msg


def test_interpreter_start_failure_is_reported_as_a_step():
    # A rootfs with libpython but no stdlib codecs: Py_InitializeFromConfig
    # fails in the job process; pid 1 relays its message as a sync error.
    import tempfile
    base = REPO / "build" / "test-tmp"
    base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(dir=base))
    try:
        d.chmod(0o755)
        root = d / "root"
        shutil.copytree(REPO / "build" / "rootfs" / "minimal", root, symlinks=True)
        shutil.rmtree(root / "usr/lib/python3.11/encodings")
        proc = subprocess.run([PYCELL, "exec", "--rootfs", str(root), "-c", "pass"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 125, proc
        assert "INTERNAL_ERROR: pycell-init: start the embedded Python 3.11" in proc.stderr, proc
        assert "init_fs_encoding" in proc.stderr, proc
    finally:
        shutil.rmtree(d)
