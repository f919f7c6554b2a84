"""examples/: the payments-incident job and one job per error code give
what examples/errors/README.md promises."""
import json
import subprocess

import pytest

from conftest import PYCELL, REPO

EX = REPO / "examples"
SHIM = REPO / "runtime" / "shim" / "pycell_shim.py"
NEW_SHIM = SHIM.exists() and "bootstrap placeholder" not in SHIM.read_text()


def run(path):
    p = subprocess.run([PYCELL, "run", str(path)], capture_output=True, timeout=120)
    return p.returncode, json.loads(p.stdout)


def test_payments_incident():
    rc, res = run(EX / "payments-incident.json")
    assert rc == 0, res
    r = res["result"]
    assert r["transactions"] == 60 and r["failed"] == 3
    assert r["failed_rate"] == 0.05 and r["severity"] == "P1"
    assert [a["merchant"] for a in r["chargeback_alerts"]] == ["delta-air", "cafe-nero"]
    assert r["latency_ms"]["p95"] >= r["latency_ms"]["average"]
    assert "-> P1" in res["stdout"]


def test_payments_incident_under_strict_policy():
    p = subprocess.run([PYCELL, "run", "--policy", str(REPO / "policy" / "strict.json"),
                        str(EX / "payments-incident.json")], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stdout
    assert json.loads(p.stdout)["result"]["severity"] == "P1"


def test_demo_script():
    p = subprocess.run([str(REPO / "tools" / "demo")], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "PYCELL_BIN": PYCELL})
    assert p.returncode == 0, p.stderr
    assert "severity P1" in p.stdout


NEEDS_SHIM = {"security_error.json", "package_unavailable.json", "syntax_error.json"}
EXPECT = {
    "invalid_job.json": ("INVALID_JOB", 2), "language_denied.json": ("LANGUAGE_DENIED", 2),
    "security_error.json": ("SECURITY_ERROR", 1), "timeout.json": ("TIMEOUT", 1),
    "cpu_limit.json": ("CPU_LIMIT", 1), "memory_limit.json": ("MEMORY_LIMIT", 1),
    "pids_limit.json": ("PIDS_LIMIT", 1), "disk_limit.json": ("DISK_LIMIT", 1),
    "output_limit.json": ("OUTPUT_LIMIT", 1), "runtime_error.json": ("RUNTIME_ERROR", 1),
    "result_invalid.json": ("RESULT_INVALID", 1), "package_unavailable.json": ("PACKAGE_UNAVAILABLE", 1),
    "syntax_error.json": ("SYNTAX_ERROR", 1),
}


def test_every_error_example_is_listed():
    assert {p.name for p in (EX / "errors").glob("*.json")} == set(EXPECT)


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_error_example(name):
    if name in NEEDS_SHIM and not NEW_SHIM:
        pytest.skip("needs the full Python shim")
    code, want_rc = EXPECT[name]
    rc, res = run(EX / "errors" / name)
    assert res["error"] and res["error"]["code"] == code, res
    assert rc == want_rc
