"""The two execution modes: `inline` (default) and `tool` (the python_exec
tool role), echoed as execution_mode; tool mode takes the policy's
tool_defaults between the job's own limits and the policy defaults."""
import json
import os
import subprocess

from conftest import PYCELL, REPO, run_job


def test_inline_is_the_default_mode():
    r = run_job({"code": "result = 1"})
    assert r.json["execution_mode"] == "inline_code"
    assert r.json["limits"]["wall_ms"] == 10000 and r.json["limits"]["stdout_bytes"] == 1048576


def test_tool_mode_takes_the_tool_defaults():
    r = run_job({"code": "result = 1", "mode": "tool"})
    assert r.json["status"] == "ok" and r.json["execution_mode"] == "python_exec_tool"
    assert r.json["limits"]["wall_ms"] == 5000
    assert r.json["limits"]["stdout_bytes"] == 65536 and r.json["limits"]["stderr_bytes"] == 65536
    assert r.json["limits"]["memory_mb"] == 256  # not in tool_defaults: the policy default


def test_job_limits_beat_tool_defaults_and_max_still_clamps():
    r = run_job({"code": "pass", "mode": "tool", "limits": {"wall_ms": 7000, "stdout_bytes": 10 ** 9}})
    assert r.json["limits"]["wall_ms"] == 7000
    assert r.json["limits"]["stdout_bytes"] == 16777216  # the policy max


def test_tool_mode_output_cap_is_enforced():
    r = run_job({"code": "print('x' * 100000)", "mode": "tool"})
    assert r.code == "OUTPUT_LIMIT"
    assert len(r.json["stdout"]) == 65536


def test_audit_log_records_the_mode(tmp_path):
    log = tmp_path / "audit.jsonl"
    env = dict(os.environ, PYCELL_AUDIT_LOG=str(log))
    for mode in ("inline", "tool"):
        subprocess.run([PYCELL, "run", "-"], input=json.dumps({"code": "pass", "mode": mode}),
                       capture_output=True, text=True, timeout=60, env=env, check=True)
    modes = [json.loads(line)["execution_mode"] for line in log.read_text().splitlines()]
    assert modes == ["inline_code", "python_exec_tool"]


def test_policy_show_and_check_know_tool_defaults(tmp_path):
    out = subprocess.run([PYCELL, "policy", "show"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["tool_defaults"] == {"wall_ms": 5000, "stdout_bytes": 65536, "stderr_bytes": 65536}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"extends": str(REPO / "policy" / "default.json"),
                               "tool_defaults": {"walltime": 1}}))
    proc = subprocess.run([PYCELL, "policy", "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "tool_defaults: unknown limit 'walltime'" in proc.stdout + proc.stderr
