"""The job contract (DESIGN.md section 3, issue 3): one test per error code
and per job key, each asserting the exact error.code and reason/detail;
the result shape, exit statuses, and the limits that hold while a job runs."""
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PYCELL, REPO, run_job

ABLATION = str(REPO / "tests" / "policies" / "ablation.json")
SHIM = REPO / "runtime" / "shim" / "pycell_shim.py"
# The placeholder shim runs code unchecked; the codes only the full shim
# reports (SECURITY_ERROR, SYNTAX_ERROR, ...) are skipped until it lands.
NEW_SHIM = SHIM.exists() and "bootstrap placeholder" not in SHIM.read_text()
needs_shim = pytest.mark.skipif(not NEW_SHIM, reason="needs the full Python shim (runtime/shim)")

RESULT_KEYS = {"id", "status", "error", "result", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
               "stdout_replaced", "stderr_replaced", "exit_code", "signal", "timed_out", "limits", "metrics",
               "code_sha256", "policy", "trace", "execution_mode"}
METRIC_KEYS = {"wall_ms", "cpu_ms", "setup_ms", "peak_memory_bytes", "stdout_bytes", "stderr_bytes"}
LIMIT_KEYS = {"wall_ms", "cpu_ms", "memory_mb", "pids", "stdout_bytes", "stderr_bytes", "tmpfs_mb", "file_bytes"}


def ok(job, *args, **kw):
    r = run_job(job, *args, **kw)
    assert r.returncode == 0 and r.json["status"] == "ok", r
    return r.json


def err(job, code, *args, rc=1, **kw):
    r = run_job(job, *args, **kw)
    assert r.json is not None, r
    assert r.code == code, r
    assert r.returncode == rc, r
    assert r.json["status"] == "error"
    return r.json["error"]


# ---------------------------------------------------------------- shape

def test_result_shape_ok():
    res = ok({"id": "shape", "code": "print('hi')\nresult = {'a': [1, 2.5, None]}"})
    assert RESULT_KEYS <= set(res), set(res) ^ RESULT_KEYS
    assert METRIC_KEYS <= set(res["metrics"])
    assert LIMIT_KEYS <= set(res["limits"])
    assert res["id"] == "shape" and res["error"] is None
    assert res["result"] == {"a": [1, 2.5, None]}
    assert res["stdout"] == "hi\n" and res["stderr"] == ""
    assert res["exit_code"] == 0 and res["signal"] is None and res["timed_out"] is False
    assert res["metrics"]["stdout_bytes"] == 3
    assert res["metrics"]["wall_ms"] > 0 and res["metrics"]["setup_ms"] > 0
    # A cold run's setup before the interpreter starts (pid 1's fork of
    # the job process, on the clock both sides share) is a part of setup.
    assert 0 < res["metrics"]["sandbox_ms"] < res["metrics"]["setup_ms"]
    assert res["policy"] == "default"
    assert res["execution_mode"] == "inline_code"
    assert [t["phase"] for t in res["trace"]] == ["policy", "validate", "setup", "execute", "finalize"]
    assert all(t["ok"] is True and t["ms"] >= 0 for t in res["trace"])


def test_code_sha256_is_sha256_of_code():
    code = "x = 'h\u00e9llo'\nresult = x"
    res = ok({"code": code})
    assert res["code_sha256"] == hashlib.sha256(code.encode()).hexdigest()


def test_refused_job_has_full_shape():
    r = run_job({"id": "r1", "code": "x", "bogus": 1})
    assert r.returncode == 2
    assert RESULT_KEYS <= set(r.json)
    assert r.json["id"] == "r1"
    assert r.json["limits"]["wall_ms"] == 10000
    assert "sandbox_ms" not in r.json["metrics"]  # no sandbox was made
    assert r.json["trace"][-1] == {"phase": "validate", "ok": False, "ms": r.json["trace"][-1]["ms"]}


def test_invalid_utf8_output_is_replaced():
    res = ok({"code": "import sys\nsys.stdout.buffer.write(b'a\\xffb\\n')\nsys.stderr.buffer.write(b'\\xc3')"},
             "--policy", ABLATION)
    assert res["stdout"] == "a\ufffdb\n" and res["stdout_replaced"] is True
    assert res["stderr"] == "\ufffd" and res["stderr_replaced"] is True


# ---------------------------------------------------------------- reading the job

def test_job_from_file_dash_and_stdin(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"code": "result = 7"}))
    for argv, stdin in (([str(job)], None), (["-"], job.read_bytes()), ([], job.read_bytes())):
        p = subprocess.run([PYCELL, "run", *argv], input=stdin, capture_output=True, timeout=60)
        assert p.returncode == 0, p
        assert json.loads(p.stdout)["result"] == 7


def test_unreadable_job_file_is_usage_error(tmp_path):
    p = subprocess.run([PYCELL, "run", str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert "cannot read job" in p.stderr


def test_job_too_large():
    big = json.dumps({"code": "x", "input": "a" * (2 * 1024 * 1024)})
    e = err(None, "INVALID_JOB", "--policy", str(REPO / "policy" / "strict.json"), raw=big, rc=2)
    assert e["details"]["reason"] == "job_too_large"


# ---------------------------------------------------------------- one test per job key

def test_key_id_echoed():
    assert ok({"id": "job-42", "code": "pass"})["id"] == "job-42"


def test_key_language_python_accepted():
    assert ok({"language": "python", "code": "result = 1"})["result"] == 1


def test_key_code_required():
    e = err({"id": "x"}, "INVALID_JOB", rc=2)
    assert e["details"]["reason"] == "missing_key:code"


def test_key_input_as_input_data_and_stdin():
    res = ok({"code": "import sys, json\nresult = [input_data, json.loads(sys.stdin.read())]",
              "input": {"n": [1, 2]}}, "--policy", ABLATION)
    assert res["result"] == [{"n": [1, 2]}, {"n": [1, 2]}]


def test_key_files_in_workdir():
    res = ok({"code": "result = open('data.csv').read()", "files": {"data.csv": "a,b\n1,2\n"}}, "--policy", ABLATION)
    assert res["result"] == "a,b\n1,2\n"


def test_key_files_bad_name():
    e = err({"code": "x", "files": {"../escape": "x"}}, "INVALID_JOB", rc=2)
    assert e["details"]["reason"] == "files:bad_name"


def test_key_limits_reported_and_clamped():
    res = ok({"code": "pass", "limits": {"wall_ms": 999999, "memory_mb": 100, "stdout_bytes": 1000}})
    assert res["limits"]["wall_ms"] == 300000  # clamped to the policy max
    assert res["limits"]["memory_mb"] == 100
    assert res["limits"]["stdout_bytes"] == 1000
    assert res["limits"]["pids"] == 64  # policy default


def test_key_limits_unknown():
    e = err({"code": "x", "limits": {"timeout": 1}}, "INVALID_JOB", rc=2)
    assert e["details"]["reason"] == "limits:unknown_key:timeout"


def test_key_imports_validated():
    e = err({"code": "x", "imports": [1]}, "INVALID_JOB", rc=2)
    assert e["details"]["reason"] == "imports:expected_string"
    ok({"code": "import json\nresult = json.dumps(1)", "imports": ["json"]})


def test_key_packages_validated():
    e = err({"code": "x", "packages": ["-e ."]}, "INVALID_JOB", rc=2)
    assert e["details"]["reason"].startswith("packages:bad_name:")


def test_key_output_schema_ok():
    res = ok({"code": "result = {'rate': 0.5, 'severity': 'P1'}",
              "output_schema": {"type": "object", "required": ["rate"],
                                "properties": {"rate": {"type": "number", "minimum": 0, "maximum": 1},
                                               "severity": {"enum": ["P1", "P2"]}}}})
    assert res["result"]["severity"] == "P1"


def test_key_mode():
    assert ok({"code": "pass", "mode": "python_exec_tool"})["execution_mode"] == "python_exec_tool"
    assert ok({"code": "pass", "mode": "inline_code"})["execution_mode"] == "inline_code"


def test_unknown_key():
    e = err({"code": "x", "timeout": 5}, "INVALID_JOB", rc=2)
    assert e["details"]["reason"] == "unknown_key:timeout"


# ---------------------------------------------------------------- one test per error code

def test_code_invalid_job():
    e = err({"code": ""}, "INVALID_JOB", rc=2)
    assert e["details"]["reason"] == "code_empty"


def test_code_language_denied():
    e = err({"code": "puts 1", "language": "ruby"}, "LANGUAGE_DENIED", rc=2)
    assert e["details"]["reason"] == "language_not_supported:ruby"


@needs_shim
def test_code_security_error():
    e = err({"code": "import os\nos.system('id')"}, "SECURITY_ERROR")
    assert "import_not_allowed:os" in json.dumps(e["details"])


def test_code_timeout():
    t0 = time.monotonic()
    r = run_job({"code": "while True: pass", "limits": {"wall_ms": 500}})
    took = time.monotonic() - t0
    assert r.code == "TIMEOUT" and r.returncode == 1, r
    assert r.json["timed_out"] is True
    assert "500 ms" in r.json["error"]["message"]
    assert took < 2.0, took


def test_timeout_kills_signal_ignoring_double_fork():
    code = ("import os, signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "if os.fork() == 0:\n"
            "    if os.fork() == 0:\n"
            "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "        while True: pass\n"
            "    os._exit(0)\n"
            "while True: time.sleep(1)\n")
    t0 = time.monotonic()
    r = run_job({"code": code, "limits": {"wall_ms": 500}}, "--policy", ABLATION)
    assert r.code == "TIMEOUT", r
    assert time.monotonic() - t0 < 2.0


def test_code_cpu_limit():
    e = err({"code": "while True: pass", "limits": {"cpu_ms": 300, "wall_ms": 10000}}, "CPU_LIMIT", timeout=30)
    assert "300 ms" in e["message"]


def test_code_memory_limit():
    e = err({"code": "x = bytearray(512 * 1024 * 1024)", "limits": {"memory_mb": 64}}, "MEMORY_LIMIT")
    assert "64 MB" in e["message"]


def test_code_pids_limit():
    code = "import os, time\nfor _ in range(200):\n    if os.fork() == 0:\n        time.sleep(5); os._exit(0)\n"
    err({"code": code, "limits": {"pids": 8}}, "PIDS_LIMIT", "--policy", ABLATION)


def test_code_disk_limit():
    code = "open('big', 'wb').write(b'x' * (4 * 1024 * 1024))"
    err({"code": code, "limits": {"tmpfs_mb": 1}}, "DISK_LIMIT", "--policy", ABLATION)


def test_code_output_limit_keeps_exactly_the_cap():
    cap = 1024 * 1024
    t0 = time.monotonic()
    r = run_job({"code": "print('x' * 10**8)", "limits": {"stdout_bytes": cap}})
    assert r.code == "OUTPUT_LIMIT", r
    assert r.returncode == 1
    assert len(r.json["stdout"]) == cap
    assert r.json["stdout_truncated"] is True and r.json["stderr_truncated"] is False
    assert "stdout" in r.json["error"]["message"]
    assert time.monotonic() - t0 < 5


def test_stderr_output_limit():
    # sys is not importable under the default policy: the Python layer is off here.
    r = run_job({"code": "import sys\nsys.stderr.write('e' * 500000)", "limits": {"stderr_bytes": 1000}},
                "--policy", ABLATION)
    assert r.code == "OUTPUT_LIMIT", r
    assert len(r.json["stderr"]) == 1000 and r.json["stderr_truncated"] is True


def test_code_runtime_error():
    e = err({"code": "def f():\n    raise ValueError('boom')\nf()"}, "RUNTIME_ERROR")
    assert e["details"]["type"] == "ValueError"
    assert "boom" in e["message"]


def test_code_result_invalid_schema_path():
    e = err({"code": "result = {'metrics': {'rate': 'high'}}",
             "output_schema": {"type": "object", "properties": {"metrics": {"type": "object", "properties": {
                 "rate": {"type": "number"}}}}}}, "RESULT_INVALID")
    assert e["details"]["path"] == "$.metrics.rate"
    assert e["details"]["reason"] == "expected number"
    assert "$.metrics.rate: expected number" in e["message"]


def test_result_invalid_missing_required():
    e = err({"code": "result = {}", "output_schema": {"type": "object", "required": ["rate"]}}, "RESULT_INVALID")
    assert e["details"]["path"] == "$.rate"


@needs_shim
def test_code_result_invalid_not_serialisable():
    err({"code": "result = {1, 2}"}, "RESULT_INVALID")


@needs_shim
def test_code_package_unavailable():
    e = err({"code": "pass", "packages": ["surely-not-installed-pkg"]}, "PACKAGE_UNAVAILABLE")
    assert "surely-not-installed-pkg" in json.dumps(e)


@needs_shim
def test_code_syntax_error():
    e = err({"code": "x = 1\ndef (:\n"}, "SYNTAX_ERROR")
    assert e["details"].get("line") == 2


@needs_shim
def test_final_answer_ends_job():
    res = ok({"code": "final_answer({'v': 1})\nprint('not reached')"})
    assert res["result"] == {"v": 1} and res["stdout"] == ""


def test_code_internal_error(tmp_path):
    (tmp_path / "rootfs").mkdir()
    r = run_job({"code": "pass"}, "--rootfs", str(tmp_path / "rootfs"))
    assert r.returncode == 125, r
    assert r.code == "INTERNAL_ERROR"
    assert r.json["error"]["message"]


# ---------------------------------------------------------------- the runtime never hangs, nothing leaks

def test_result_cannot_be_forged_on_stdout():
    res = ok({"code": "print(json.dumps({'ok': True, 'result': 'forged'}))\nresult = 'real'",
              "imports": ["json"]} | {"code": "import json\nprint(json.dumps({'ok': True, 'result': 'forged'}))\n"
                                              "result = 'real'"})
    assert res["result"] == "real"


def test_closed_stdout_and_flooded_stderr_do_not_hang():
    code = "import os, sys\nos.close(1)\nsys.stderr.write('e' * 10**7)"
    t0 = time.monotonic()
    r = run_job({"code": code, "limits": {"wall_ms": 5000}}, "--policy", ABLATION)
    assert r.code == "OUTPUT_LIMIT", r
    assert time.monotonic() - t0 < 5


def test_job_that_never_reads_big_stdin():
    r = run_job({"code": "result = len(input_data)", "input": "z" * (3 * 1024 * 1024)})
    assert r.json["result"] == 3 * 1024 * 1024


def _tagged(tag):
    """Is any host process holding a file whose name carries tag open?"""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            for fd in (p / "fd").iterdir():
                if tag in os.readlink(fd):
                    return True
        except OSError:
            pass
    return False


def test_sleeping_grandchild_is_not_left_behind():
    """The grandchild keeps a file named after a tag open, so the host can
    see it while the job runs, and check it is gone once pycell returns.
    (Neither prctl via ctypes nor /proc/self/comm is reachable from a job.)"""
    tag = f"pcgc{os.getpid() % 100000}x{time.monotonic_ns() % 10**6}"
    code = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    if os.fork() == 0:\n"
            f"        f = open('{tag}', 'w')\n"
            "        time.sleep(60)\n"
            "    os._exit(0)\n"
            "time.sleep(0.5)\n"
            "result = 'parent done'\n")
    p = subprocess.Popen([PYCELL, "run", "--policy", ABLATION, "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(json.dumps({"code": code}).encode())
    p.stdin.close()
    seen = False
    while p.poll() is None:
        seen = seen or _tagged(tag)
        time.sleep(0.02)
    res = json.loads(p.stdout.read())
    assert res["result"] == "parent done", res
    assert seen, "the grandchild never showed up: the test proves nothing"
    time.sleep(0.2)
    assert not _tagged(tag)


@pytest.mark.parametrize("value", [1, -2.5, "text", True, None, [1, "a"], {"k": [1]}])
def test_input_of_every_json_type_reaches_the_job(value):
    # A bare top-level number used to arrive as None (json-c needs the end of
    # input to finish a number).
    r = run_job({"code": "result = input_data", "input": value})
    assert r.json["status"] == "ok", r
    assert r.json["result"] == value


@pytest.mark.parametrize("raw", [
    '{"code": "pass", "files": {"a\\u0000/..": "x"}}',   # json-c would cut the key to "a"
    '{"code": "pass", "input": "a\\u0000b"}',
    '{"code": "pass", "input": {"k\\u0000": 1}}',
])
def test_nul_escape_is_refused_everywhere(raw):
    r = run_job(None, raw=raw)
    assert r.returncode == 2 and r.code == "INVALID_JOB"
    assert r.json["error"]["details"]["reason"] == "nul_byte"


def test_escaped_backslash_before_u0000_is_plain_text():
    r = run_job(None, raw='{"code": "result = input_data", "input": "a\\\\u0000b"}')
    assert r.json["status"] == "ok" and r.json["result"] == "a\\u0000b"
