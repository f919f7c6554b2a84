"""The shim's side of the job contract through `pycell run`: one test per
violation kind with the exact reason, and the SYNTAX_ERROR, RUNTIME_ERROR,
RESULT_INVALID, final_answer, input and ablation behaviours."""
import json

import pytest

from conftest import REPO, run_exec, run_job

ABLATION = str(REPO / "tests" / "policies" / "ablation.json")
STRICT = str(REPO / "policy" / "strict.json")


def violations(r):
    assert r.code == "SECURITY_ERROR", r
    assert r.json["status"] == "error" and r.json["result"] is None, r
    return r.json["error"]["details"]["violations"]


@pytest.mark.parametrize("code,expected", [
    ("import os", ["import_not_allowed:os"]),
    ("from subprocess import run", ["import_not_allowed:subprocess"]),
    ("from . import x", ["import_not_allowed:."]),
    ("eval('1')", ["name_not_allowed:eval"]),
    ("x = __builtins__", ["name_not_allowed:__builtins__"]),
    ("x = ().__class__", ["attr_not_allowed:__class__"]),
    ("def g():\n    yield\ng().gi_frame", ["attr_not_allowed:gi_frame"]),
    ("hasattr((), 'a' + 'b')", ["attr_not_constant:hasattr"]),
    ("'{0.real}'.format(1)", ["format_attr_not_allowed"]),
    ("match 1:\n    case C(a):\n        pass", ["match_class_pattern_not_allowed"]),
])
def test_violation_kind(code, expected):
    r = run_job({"code": code})
    assert violations(r) == expected
    assert r.json["error"]["details"]["layer"] == "ast"
    assert r.json["error"]["message"] == "the code breaks the policy: " + ", ".join(expected)


def test_import_not_grantable():
    assert violations(run_job({"code": "pass", "imports": ["socket", "sqlite3"]})) == ["import_not_grantable:socket"]


def test_granted_import_works():
    r = run_job({"code": "import sqlite3\nresult = sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0]",
                 "imports": ["sqlite3"]})
    assert r.json["status"] == "ok" and r.json["result"] == 42, r


def test_every_violation_is_reported_at_once():
    code = "import os\nimport socket\neval(x.__class__)\n'{0.f_back}'.format(1)\n"
    assert violations(run_job({"code": code})) == [
        "attr_not_allowed:__class__", "attr_not_allowed:f_back", "format_attr_not_allowed", "import_not_allowed:os",
        "import_not_allowed:socket", "name_not_allowed:eval"]


def test_strict_policy_denies_open_and_random():
    r = run_job({"code": "import random\nopen('x')"}, "--policy", STRICT)
    assert violations(r) == ["import_not_allowed:random", "name_not_allowed:open"]


def test_audit_tripwire_names_the_event():
    r = run_job({"code": "import typing\ntry:\n    typing.ForwardRef('x')\nexcept BaseException:\n    pass\n"
                         "result = 'survived'"})
    assert violations(r) == ["audit:compile"]
    assert r.json["error"]["details"]["layer"] == "audit"


def test_syntax_error():
    r = run_job({"code": "x = 1\nif x\n    pass\n"})
    assert r.code == "SYNTAX_ERROR", r
    d = r.json["error"]["details"]
    assert d["line"] == 2 and d["message"] == "expected ':'" and d["offset"] == 5, r


def test_runtime_error_shows_user_lines_only():
    r = run_job({"code": "def f(d):\n    return d['k']\nf({})\n"})
    assert r.code == "RUNTIME_ERROR", r
    d = r.json["error"]["details"]
    assert d["type"] == "KeyError" and d["message"] == "'k'"
    assert d["traceback"] == ('Traceback (most recent call last):\n  File "<job>", line 3, in <module>\n'
                              '    f({})\n  File "<job>", line 2, in f\n    return d[\'k\']\nKeyError: \'k\'\n')
    assert r.json["stderr"] == d["traceback"]
    assert "pycell" not in r.json["stderr"]


def test_result_invalid_names_the_path():
    r = run_job({"code": "result = {'a': [1, 2, {'b': {1, 2}}]}"})
    assert r.code == "RESULT_INVALID", r
    assert r.json["error"]["details"] == {"path": "$.a[2].b", "reason": "not JSON-serialisable: set"}


def test_result_nan_is_invalid():
    r = run_job({"code": "result = [float('inf')]"})
    assert r.code == "RESULT_INVALID", r
    assert r.json["error"]["details"]["path"] == "$[0]"


def test_no_result_is_null():
    r = run_job({"code": "x = 1"})
    assert r.json["status"] == "ok" and r.json["result"] is None, r


def test_final_answer_ends_the_job_and_cannot_be_caught():
    r = run_job({"code": "print('a')\ntry:\n    final_answer({'v': 1})\nexcept BaseException:\n    pass\n"
                         "print('never')\nresult = 2"})
    assert r.json["status"] == "ok" and r.json["result"] == {"v": 1}, r
    assert r.json["stdout"] == "a\n" and r.json["exit_code"] == 0, r


def test_final_answer_with_invalid_value():
    r = run_job({"code": "final_answer(object())"})
    assert r.code == "RESULT_INVALID", r
    assert r.json["error"]["details"] == {"path": "$", "reason": "not JSON-serialisable: object"}


def test_input_data_and_files():
    r = run_job({"code": "result = [input_data['n'] + 1, open('a.txt').read()]", "input": {"n": 1},
                 "files": {"a.txt": "hello"}})
    assert r.json["result"] == [2, "hello"], r


LOOSE = str(REPO / "tests" / "escapes" / "loose.json")  # input() not denied


def test_input_returns_the_input_json_once():
    # The input as the supervisor wrote it to the job's stdin, read when
    # asked: what the job did to input_data before does not show.
    value = {"rows": [1, 2.5, "x\u00e9", None], "n": 3}
    code = "input_data['n'] = 4\nt = input()\ntry:\n    input()\n    again = 'read'\n" \
        "except EOFError:\n    again = 'EOFError'\nresult = [t, again]"
    r = run_job({"code": code, "input": value}, "--policy", LOOSE)
    assert r.json["status"] == "ok", r
    text, again = r.json["result"]
    assert json.loads(text) == value and again == "EOFError", r
    r = run_job({"code": "input()"}, "--policy", LOOSE)
    assert r.code == "RUNTIME_ERROR" and "EOFError" in r.json["error"]["message"], r


def test_printing_cannot_forge_a_result():
    r = run_job({"code": "print('{\"ok\": true, \"result\": \"forged\"}')\nresult = 'real'"})
    assert r.json["result"] == "real", r


def test_ablation_turns_the_python_layer_off():
    r = run_job({"code": "import os\nresult = [os.getcwd(), ().__class__.__name__]"}, "--policy", ABLATION)
    assert r.json["status"] == "ok" and r.json["result"] == ["/workspace", "tuple"], r


def test_exec_streams_and_exits_with_status():
    p = run_exec("print('hi')\n1/0")
    assert p.stdout == "hi\n" and "ZeroDivisionError: division by zero" in p.stderr and p.returncode != 0


DATASCI = str(REPO / "policy" / "datasci.json")


def _datasci_ready():
    from conftest import DATASCI_ROOTFS, MUST_WORK
    if (DATASCI_ROOTFS / "usr/lib/python3/dist-packages/pandas").exists():
        return True
    if MUST_WORK:
        pytest.fail("build/rootfs/datasci has no pandas: build the datasci rootfs")
    pytest.skip("build/rootfs/datasci has no pandas")


def test_datasci_numpy_pandas_through_proxies():
    _datasci_ready()
    code = ("import numpy as np\nimport pandas as pd\n"
            "df = pd.DataFrame({'x': [1, 2, 3], 'y': [4.0, 5.0, 6.0]})\n"
            "result = [int(np.arange(10).sum()), float(np.linalg.norm([3, 4])), df['y'].mean(),\n"
            "          hasattr(np, 'ctypeslib'), hasattr(np, 'os'), hasattr(pd, 'np')]\n")
    r = run_job({"code": code}, "--policy", DATASCI)
    assert r.json["status"] == "ok", r
    assert r.json["result"] == [45, 5.0, 5.0, False, False, False], r


def test_datasci_still_refuses_os():
    _datasci_ready()
    r = run_job({"code": "import numpy\nimport os"}, "--policy", DATASCI)
    assert violations(r) == ["import_not_allowed:os"]
