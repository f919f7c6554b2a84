"""Unit tests of the shim's static check (runtime/shim/pycell_check.py) and of
run_job() on the host, one per violation kind, with the exact reason string."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "runtime" / "shim"
sys.path.insert(0, str(SHIM))

import pycell_check  # noqa: E402

POLICY = json.loads((REPO / "policy" / "default.json").read_text())["python"]
ALLOWED = POLICY["allowed_imports"] + ["__future__"]
DENIED = POLICY["denied_builtins"]


def check(code):
    tree, syn = pycell_check.parse(code)
    assert syn is None, syn
    return pycell_check.check_code(tree, ALLOWED, DENIED)


@pytest.mark.parametrize("code,reasons", [
    ("import os", ["import_not_allowed:os"]),
    ("import json, subprocess", ["import_not_allowed:subprocess"]),
    ("import os.path", ["import_not_allowed:os.path"]),
    ("from os import system", ["import_not_allowed:os"]),
    ("from . import x", ["import_not_allowed:."]),
    ("from ..pkg import x", ["import_not_allowed:..pkg"]),
    ("import importlib", ["import_not_allowed:importlib"]),
    ("from __future__ import annotations", []),
    ("eval('1')", ["name_not_allowed:eval"]),
    ("f = exec", ["name_not_allowed:exec"]),
    ("__import__('os')", ["name_not_allowed:__import__"]),
    ("breakpoint()", ["name_not_allowed:breakpoint"]),
    ("x = __builtins__", ["name_not_allowed:__builtins__"]),
    ("def f(__class__): pass", ["name_not_allowed:__class__"]),
    ("x = ().__class__", ["attr_not_allowed:__class__"]),
    ("x = object.__subclasses__()", ["attr_not_allowed:__subclasses__"]),
    ("def g(): yield\nx = g().gi_frame", ["attr_not_allowed:gi_frame"]),
    ("x = y.f_back.f_globals", ["attr_not_allowed:f_back", "attr_not_allowed:f_globals"]),
    ("x = e.tb_frame", ["attr_not_allowed:tb_frame"]),
    ("x = c.cr_frame", ["attr_not_allowed:cr_frame"]),
    ("x = a.ag_frame", ["attr_not_allowed:ag_frame"]),
    ("x = f.co_code", ["attr_not_allowed:co_code"]),
    ("x = f.func_globals", ["attr_not_allowed:func_globals"]),
    ("hasattr(x, '__class__')", ["attr_not_allowed:__class__"]),
    ("k = '__class__.__mro__'", ["attr_not_allowed:__class__", "attr_not_allowed:__mro__"]),
    ("hasattr(x, name)", ["attr_not_constant:hasattr"]),
    ("'{0.__class__}'.format(1)", ["attr_not_allowed:__class__", "format_attr_not_allowed"]),
    ("'{0.gi_frame.f_back}'.format(g)", ["attr_not_allowed:f_back", "attr_not_allowed:gi_frame",
                                         "format_attr_not_allowed"]),
    ("'{0.real}'.format(1)", ["format_attr_not_allowed"]),
    ("'{0[0]}'.format([1])", ["format_attr_not_allowed"]),
    ("'{:{0.real}}'.format(1)", ["format_attr_not_allowed"]),
    ("fmt.format_map(d)", ["format_attr_not_allowed"]),
    ("match x:\n    case C(a, b): pass", ["match_class_pattern_not_allowed"]),
    ("match x:\n    case C(__class__=c): pass", ["attr_not_allowed:__class__"]),
    ("match x:\n    case C(gi_frame=c): pass", ["attr_not_allowed:gi_frame"]),
    ("match x:\n    case int(n): pass", []),
    ("match x:\n    case {'a': 1, **__builtins__}: pass", ["name_not_allowed:__builtins__"]),
    # Fields that a regex or a partial walker would miss.
    ("def f(a=().__class__): pass", ["attr_not_allowed:__class__"]),
    ("def f(a, /, b=x.__dict__): pass", ["attr_not_allowed:__dict__"]),
    ("def f(a: x.__class__): pass", ["attr_not_allowed:__class__"]),
    ("def f() -> x.__mro__: pass", ["attr_not_allowed:__mro__"]),
    ("@x.__class__\ndef f(): pass", ["attr_not_allowed:__class__"]),
    ("class A(metaclass=x.__class__): pass", ["attr_not_allowed:__class__"]),
    ("class A(x.__base__): pass", ["attr_not_allowed:__base__"]),
    ("y = f'{x:{x.__class__}}'", ["attr_not_allowed:__class__"]),
    ("y = f'{x.__class__!r}'", ["attr_not_allowed:__class__"]),
    ("y = lambda a=x.__globals__: a", ["attr_not_allowed:__globals__"]),
    ("match x:\n    case 1 if x.__class__: pass", ["attr_not_allowed:__class__"]),
    ("try:\n    pass\nexcept* ValueError as __e__:\n    x.f_back", ["attr_not_allowed:f_back",
                                                             "name_not_allowed:__e__"]),
    ("with x as y: y.__enter__", ["attr_not_allowed:__enter__"]),
    ("global __builtins__", ["name_not_allowed:__builtins__"]),
    ("from json import loads as eval", ["name_not_allowed:eval"]),
])
def test_violation(code, reasons):
    assert check(code) == reasons


@pytest.mark.parametrize("code", [
    "class A:\n    def __init__(self, x):\n        self.x = x\n    def __repr__(self):\n        return 'A'",
    "class E(Exception):\n    def __init__(self, m):\n        super().__init__(m)",
    "if __name__ == '__main__':\n    print(type(1).__name__)",
    "class P:\n    __slots__ = ('x',)",
    "'{} {:>10} {name}'.format(1, 2, name=3)",
    "f'{x!r:>{width}}'",
    "hasattr(x, 'real')",
    "import collections.abc\nfrom collections import Counter",
    "s = 'f_back is just a word'",
])
def test_ordinary_code_passes(code):
    assert check(code) == []


def test_all_violations_reported_sorted_and_deduplicated():
    code = ("import os\nimport sys\nx = ().__class__.__bases__\ny = ().__class__\n"
            "eval('1')\nexec('2')\ng.gi_frame.f_back\n'{0.__class__}'.format(1)\n")
    assert check(code) == [
        "attr_not_allowed:__bases__", "attr_not_allowed:__class__", "attr_not_allowed:f_back",
        "attr_not_allowed:gi_frame", "format_attr_not_allowed", "import_not_allowed:os",
        "import_not_allowed:sys", "name_not_allowed:eval", "name_not_allowed:exec"]


def test_import_not_grantable():
    assert pycell_check.check_imports(["numpy", "os", "json"], ALLOWED, POLICY["grantable_imports"]) == [
        "import_not_grantable:os"]


def test_syntax_error_has_line_and_message():
    tree, syn = pycell_check.parse("x = 1\ndef f(:\n")
    assert tree is None
    assert syn["line"] == 2 and syn["message"] == "invalid syntax" and syn["offset"]


def test_nul_byte_is_a_syntax_error():
    _tree, syn = pycell_check.parse("x = 1\0")
    assert syn is not None and "null" in syn["message"]


# ---------------------------------------------------------------- run_job on the host

# The report goes to a file: a tripwire writes it and _exit()s on its own.
RUNNER = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import pycell_shim
boot = json.loads(sys.stdin.read())
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
report = pycell_shim.run_job(boot, fd)
os.write(fd, (report.pop("text") if "text" in report else json.dumps(report)).encode())
"""


def run_host(code, **boot):
    b = {"code": code, "mode": "inline", "has_input": "input" in boot, "input": boot.pop("input", None),
         "python": POLICY, "checks": True, "imports": []}
    b.update(boot)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "report.json")
        p = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", RUNNER, str(SHIM), out],
                           input=json.dumps(b), capture_output=True, text=True, timeout=60, cwd=d)
        with open(out) as f:
            text = f.read()
    assert text, p
    return json.loads(text)


def test_run_job_result_and_input():
    assert run_host("result = input_data['a'] * 2", input={"a": 21}) == {"ok": True, "result": 42}


def test_run_job_security_error_lists_violations():
    r = run_host("import os\nx = ().__class__")
    assert r["error"]["code"] == "SECURITY_ERROR"
    assert r["error"]["details"]["violations"] == ["attr_not_allowed:__class__", "import_not_allowed:os"]


def test_run_job_import_not_grantable():
    r = run_host("pass", imports=["socket"])
    assert r["error"]["details"]["violations"] == ["import_not_grantable:socket"]


def test_run_job_syntax_error():
    r = run_host("x = (")
    assert r["error"]["code"] == "SYNTAX_ERROR" and r["error"]["details"]["line"] == 1


def test_run_job_runtime_error_shows_user_frames_only():
    r = run_host("def f():\n    return 1/0\nf()")
    d = r["error"]["details"]
    assert r["error"]["code"] == "RUNTIME_ERROR" and d["type"] == "ZeroDivisionError"
    assert d["traceback"] == ('Traceback (most recent call last):\n  File "<job>", line 3, in <module>\n'
                              '    f()\n  File "<job>", line 2, in f\n    return 1/0\n'
                              'ZeroDivisionError: division by zero\n')
    assert "pycell_shim" not in d["traceback"]


def test_run_job_result_invalid_path():
    r = run_host("result = {'a': {'b': [1, {1, 2}]}}")
    assert r["error"] == {"code": "RESULT_INVALID", "message": "the result is not valid JSON at $.a.b[1]: "
                          "not JSON-serialisable: set",
                          "details": {"path": "$.a.b[1]", "reason": "not JSON-serialisable: set"}}


def test_run_job_proxies_hide_modules():
    r = run_host("import statistics, random, collections, enum\n"
                 "result = [hasattr(statistics, 'sys'), hasattr(random, '_os'), hasattr(collections, '_sys'),\n"
                 "          hasattr(enum, 'bltns'), hasattr(statistics, 'mean')]")
    assert r == {"ok": True, "result": [False, False, False, False, True]}


def test_run_job_audit_tripwire_ends_the_process():
    r = run_host("import typing\ndef f(x: 'int'): pass\ntry:\n    typing.get_type_hints(f)\n"
                 "except BaseException:\n    result = 'survived'\n")
    assert r["error"]["details"]["violations"] == ["audit:compile"]


def test_checks_false_is_plain_python():
    r = run_host("import os\nresult = os.sep", checks=False)
    assert r == {"ok": True, "result": "/"}


def test_shim_imports_little():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); before = set(sys.modules); import pycell_shim;"
            "print(sorted(set(sys.modules) - before))")
    p = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code, str(SHIM)], capture_output=True,
                       text=True, timeout=30)
    mods = set(eval(p.stdout))  # noqa: S307 - our own subprocess's repr of a list of str
    assert not mods & {"typing", "dataclasses", "traceback", "inspect", "string", "linecache", "tokenize", "re", "enum",
                       "ast", "json", "contextlib",
                       "importlib", "subprocess", "socket"}, mods


def test_packages_missing_is_package_unavailable():
    r = run_host("pass", packages=["surely-not-installed-pkg"])
    assert r["error"]["code"] == "PACKAGE_UNAVAILABLE"
    assert r["error"]["details"] == {"packages": ["surely-not-installed-pkg"]}


def test_distribution_names_are_normalised(tmp_path):
    import pycell_job
    (tmp_path / "python_dateutil-2.8.2.dist-info").mkdir()
    (tmp_path / "PyYAML-6.0.egg-info").mkdir()
    assert pycell_job.missing_packages(["python-dateutil", "pyyaml", "PyYAML==6.0", "numpy"], [str(tmp_path)]) == [
        "numpy"]


def test_run_job_result_invalid_circular():
    r = run_host("a = []\na.append(a)\nresult = {'x': a}")
    assert r["error"]["details"] == {"path": "$.x[0]", "reason": "circular reference"}


def test_submodules_need_a_star_entry_or_a_grant():
    assert pycell_check.import_allowed("numpy.linalg", {"numpy", "numpy.*"})
    assert pycell_check.import_allowed("numpy.linalg.lapack", {"numpy.*"})
    assert not pycell_check.import_allowed("numpy.linalg", {"numpy"})
    assert not pycell_check.import_allowed("json.decoder", {"json"})
    assert check("import json.decoder") == ["import_not_allowed:json.decoder"]
    r = run_host("from multiprocessing.pool import ThreadPool\nresult = 1", imports=["multiprocessing"])
    assert r == {"ok": True, "result": 1}
