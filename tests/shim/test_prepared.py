"""Warm mode's prepared policy (pycell_job.prepare_policy): what the zygote
builds once for every job without grants must be what a job's own guard
builds, and a job must answer exactly as it does without it.

Each job runs in a fork of one prepared process, as under a zygote: an audit
hook cannot be removed, and a prepared guard serves one job."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "runtime" / "shim"
POLICY = json.loads((REPO / "policy" / "default.json").read_text())["python"]

# argv: shim dir, "prepared" or "cold"; stdin: a JSON list of bootstraps;
# stdout: their reports, each from a fork of this process.
RUNNER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import pycell_job
boots = json.loads(sys.stdin.read())
python = boots[0]["python"]
for m in python["allowed_imports"]:
    if m.isidentifier():
        __import__(m)
if sys.argv[2] == "prepared":
    pycell_job.prepare_policy(python)
    pycell_job.pycell_guard.prepare_builtins(python["denied_builtins"])
out = []
for boot in boots:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        boot = pycell_job.loads(pycell_job.dumps(boot))  # a fresh python section, as a job's bootstrap has
        report = pycell_job.run_job(boot, w)
        report["prepared_left"] = len(pycell_job._PREPARED)
        os.write(w, pycell_job.dumps(report).encode())
        os._exit(0)
    os.close(w)
    out.append(pycell_job._read_fd(r).decode())
    os.waitpid(pid, 0)
print(json.dumps(out))
"""

CODES = [
    "x = 1",
    "import json\nresult = json.loads(json.dumps({'a': [1, 2.5]}))",
    "import json; print(json.dumps({'ok': 1}))",
    "import statistics\nresult = statistics.mean([1, 2, 3])",
    "import statistics\nresult = hasattr(statistics, 'sys')",
    "import collections.abc\nresult = [collections.abc.Mapping.__name__, hasattr(collections, 'abc')]",
    "from collections import abc, Counter\nresult = [abc.Sequence.__name__, Counter('aab')['a']]",
    "import functools\n@functools.wraps(len)\ndef f(): pass\nresult = f.__name__",
    "import operator\nresult = hasattr(operator, 'attrgetter')",
    "import string\nresult = hasattr(string, 'Formatter')",
    "import json\njson.x = 1",
    "import os",
    "x = ().__class__",
    "eval('1')",
    "open('/etc/passwd')",
    "result = open('/tmp/pycell-test-prepared-none').read()",
    "result = input()",
    "final_answer({'a': 1})",
    "raise ValueError('boom')",
    "import random\nresult = random.random() < 2",
    "result = sorted(k for k in __builtins__)",
    "import threading\nresult = hasattr(threading, 'Thread')",
    "def f(:\n",
]


def run(mode, boots):
    p = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", RUNNER, str(SHIM), mode],
                       input=json.dumps(boots), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [json.loads(r) if r.startswith("{") else r for r in json.loads(p.stdout)]


def boot(code, **kw):
    return {"code": code, "has_input": "input" in kw, "input": kw.get("input"), "python": POLICY,
            "checks": True, "imports": kw.get("imports", []), "packages": []}


def test_a_prepared_job_answers_as_a_job_with_its_own_guard():
    boots = [boot(c) for c in CODES] + [boot("result = input()", input={"a": 1}),
                                        boot(CODES[-2], imports=["threading"])]
    prepared, cold = run("prepared", boots), run("cold", boots)
    for b, p, c in zip(boots, prepared, cold):
        if "prepared_left" in c:  # not for reports written by final_answer or a tripwire
            # every job takes it, but one with grants or one that does not parse
            assert p.pop("prepared_left") == (1 if b["imports"] or "(:" in b["code"] else 0), b
            assert c.pop("prepared_left") == 0
        assert p == c, b["code"]
    # the cases do what they say, so the comparison means something
    assert cold[0] == {"text": '{"ok":true}'}
    assert json.loads(cold[4]["text"])["result"] is False  # statistics.sys: not in the proxy
    assert "attr_not_allowed:__class__" in cold[12]["error"]["message"]
    assert "limited to /workspace" in cold[14]["error"]["message"]
    assert cold[-3]["error"]["code"] == "SYNTAX_ERROR"
    assert json.loads(cold[-1]["text"])["result"] is True  # the grant went through its own guard


def test_another_policy_does_not_take_the_prepared_guard():
    strict = dict(POLICY, denied_builtins=POLICY["denied_builtins"] + ["open"])
    code = "result = open('/workspace/x')"
    p = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", RUNNER.replace(
        'python = boots[0]["python"]', 'python = boots[0]["python"]; boots = boots[1:]'), str(SHIM), "prepared"],
        input=json.dumps([boot("x = 1"), dict(boot(code), python=strict)]), capture_output=True, text=True,
        timeout=60)
    assert p.returncode == 0, p.stderr
    report = json.loads(json.loads(p.stdout)[0])
    assert report["prepared_left"] == 0  # taken, found to be another policy's, and dropped
    assert report["error"]["code"] == "SECURITY_ERROR" and "name_not_allowed:open" in report["error"]["message"]


PROXIES = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import pycell_guard
python = json.loads(sys.stdin.read())
for m in python["allowed_imports"]:
    __import__(m)
prepared = pycell_guard.prepare_guard(python)
fresh = pycell_guard.Guard(python, [], 4)
out = {}
for name in sorted(prepared.proxies):
    a, b = prepared.proxies[name], fresh.proxy(sys.modules[name])
    da, db = vars(a), vars(b)
    same = sorted(da) == sorted(db) and all(
        da[k] is db[k] or (k == "__all__" and da[k] == db[k])
        or (isinstance(db[k], pycell_guard.ReadOnlyModule) and da[k].__name__ == db[k].__name__)
        or getattr(db[k], "__qualname__", "").startswith("_safe_") for k in db)
    out[name] = [same, len(db)]
b1, b2 = prepared.builtins_dict(), fresh.builtins_dict()
bound = [k for k in b2 if getattr(b2[k], "__self__", None) is fresh]
def same(a, b):  # the guarded getattr and friends are closures made per builtins dict
    return a is b or (getattr(b, "__qualname__", "").startswith("_guarded_attr_func.")
                      and a.__qualname__ == b.__qualname__ and a.__name__ == b.__name__)
out["builtins"] = [sorted(b1) == sorted(b2) and all(same(b1[k], b2[k]) for k in b2 if k not in bound)
                   and all(b1[k].__self__ is prepared for k in bound), sorted(bound)]
print(json.dumps(out))
"""


def test_prepared_proxies_and_builtins_are_a_fresh_guards():
    p = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", PROXIES, str(SHIM)], input=json.dumps(POLICY),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    bound = out.pop("builtins")
    assert bound == [True, ["__import__", "open"]]
    assert set(out) >= {"json", "math", "collections", "collections.abc", "functools", "operator", "string"}
    for name, (same, n) in out.items():
        assert same and n, name


@pytest.mark.parametrize("granted", [[], ["multiprocessing"]])
def test_trusted_files_are_kept_per_grant(granted):
    sys.path.insert(0, str(SHIM))
    import pycell_job
    first = pycell_job._trusted_files(granted)
    assert pycell_job._trusted_files(granted) is first
    assert any(f.endswith("/dataclasses.py") for f in first)
    assert any(f.endswith("multiprocessing/sharedctypes.py") for f in first) == bool(granted)
