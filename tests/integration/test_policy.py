"""Policies and precedence (DESIGN.md section 4): `pycell policy show`,
`pycell policy check`, job -> policy -> system config -> built-in, the
shipped policies, and the audit log."""
import json
import os
import subprocess
import threading

import pytest

from conftest import PYCELL, REPO, run_job

POLICY = REPO / "policy"


def pycell(*args, env=None, stdin=None):
    return subprocess.run([PYCELL, *args], capture_output=True, text=True, timeout=60, env=env, input=stdin)


def env_with(**kw):
    e = dict(os.environ)
    e.update(kw)
    return e


def test_show_default():
    p = pycell("policy", "show")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["name"] == "default"
    assert d["limits"]["wall_ms"] == {"default": 10000, "max": 300000}
    assert d["limits"]["stdout_bytes"]["default"] == 1024 * 1024
    assert d["max_code_bytes"] == 65536
    assert d["network"] == "none"
    assert d["python"]["checks"] is True


def test_show_with_job_clamps(tmp_path):
    job = tmp_path / "j.json"
    job.write_text(json.dumps({"id": "s", "code": "pass", "limits": {"wall_ms": 10**7, "memory_mb": 100}}))
    d = json.loads(pycell("policy", "show", "--policy", str(POLICY / "strict.json"), "--job", str(job)).stdout)
    assert d["name"] == "strict"
    assert d["effective_limits"]["wall_ms"] == 30000  # strict max
    assert d["effective_limits"]["memory_mb"] == 100
    assert d["effective_limits"]["pids"] == 16
    assert d["job"]["id"] == "s"


def test_show_with_invalid_job(tmp_path):
    job = tmp_path / "j.json"
    job.write_text('{"code": "x", "nope": 1}')
    p = pycell("policy", "show", "--job", str(job))
    assert p.returncode == 2 and "unknown_key:nope" in p.stderr


def test_precedence_job_policy_system_builtin(tmp_path):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"name": "bare", "extends": str(POLICY / "default.json"),
                                "limits": {"wall_ms": {"default": 7000}}}))
    # a policy that sets no cpu_ms default of its own
    nocpu = tmp_path / "nocpu.json"
    nocpu.write_text(json.dumps({"name": "nocpu", "seccomp": str(POLICY / "seccomp" / "default.json"),
                                 "limits": {"wall_ms": {"default": 7000, "max": 20000}}}))
    sysconf = tmp_path / "config.json"
    sysconf.write_text(json.dumps({"limits": {"wall_ms": {"default": 1111}, "cpu_ms": {"default": 2222}}}))
    env = env_with(PYCELL_CONFIG=str(sysconf))
    d = json.loads(pycell("policy", "show", "--policy", str(nocpu), env=env).stdout)
    assert d["limits"]["wall_ms"]["default"] == 7000  # policy beats system config
    assert d["limits"]["cpu_ms"]["default"] == 2222   # system config beats built-in
    assert d["system_config"] == str(sysconf)
    r = run_job({"code": "pass", "limits": {"wall_ms": 5000}}, "--policy", str(nocpu), env=env)
    assert r.json["limits"]["wall_ms"] == 5000         # job beats policy
    assert r.json["limits"]["cpu_ms"] == 2222
    r = run_job({"code": "pass", "limits": {"wall_ms": 99999}}, "--policy", str(nocpu), env=env)
    assert r.json["limits"]["wall_ms"] == 20000        # clamped to the policy max


def test_bad_system_config_is_usage_error(tmp_path):
    sysconf = tmp_path / "config.json"
    sysconf.write_text(json.dumps({"limits": {"wall_ms": {"max": 5}}}))
    r = run_job({"code": "pass"}, env=env_with(PYCELL_CONFIG=str(sysconf)))
    assert r.returncode == 2 and "system config sets defaults only" in r.stderr


@pytest.mark.parametrize("name", ["default.json", "strict.json"])
def test_check_shipped(name):
    p = pycell("policy", "check", str(POLICY / name))
    if not (POLICY / "seccomp" / "default.json").exists():
        assert p.returncode == 1 and "seccomp: cannot read" in p.stderr
        return
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout


@pytest.mark.parametrize("text,msg", [
    ('{"nmae": "x"}', "unknown key 'nmae'"),
    ('{"limits": {"wall_ms": {"default": 9, "max": 1}}}', "limits.wall_ms: default 9 is above max 1"),
    ('{"limits": {"wall_ms": {"default": "9"}}}', "limits.wall_ms.default: expected integer"),
    ('{"limits": {"walltime": {"default": 9}}}', "unknown limit 'walltime'"),
    ('{"limits": {"wall_ms": {"default": 9, "min": 1}}}', "limits.wall_ms: unknown key 'min'"),
    ('{"network": "bridge"}', "network: 'bridge' is not supported"),
    ('{"python": {"denied_builtins": "eval"}}', "python.denied_builtins: expected an array of strings"),
    ('{"python": {"checks": "yes"}}', "python.checks: expected boolean"),
    ('{"extends": "missing.json"}', "missing.json"),
    ('{"max_code_bytes": 0}', "max_code_bytes: out of range"),
    ('{"audit": {"file": "x"}}', "audit: unknown key 'file'"),
    ('{"name": "x",}', "invalid JSON"),
    ('[]', "expected a JSON object"),
])
def test_check_reports_precise_errors(tmp_path, text, msg):
    f = tmp_path / "p.json"
    f.write_text(text)
    p = pycell("policy", "check", str(f))
    assert p.returncode == 1, p
    assert msg in p.stderr, p.stderr
    assert str(f) in p.stderr


def test_check_usage():
    assert pycell("policy", "check").returncode == 2
    assert pycell("policy", "frobnicate").returncode == 2


def test_strict_policy_applies():
    r = run_job({"code": "pass"}, "--policy", str(POLICY / "strict.json"))
    assert r.json["policy"] == "strict"
    assert r.json["limits"]["wall_ms"] == 5000 and r.json["limits"]["pids"] == 16


# ---------------------------------------------------------------- audit log

AUDIT_KEYS = {"time", "id", "code_sha256", "policy", "limits", "status", "error_code", "metrics", "execution_mode"}


def test_audit_log_env(tmp_path):
    log = tmp_path / "audit.jsonl"
    env = env_with(PYCELL_AUDIT_LOG=str(log))
    run_job({"id": "a1", "code": "result = 1"}, env=env)
    run_job({"id": "a2", "code": "raise SystemExit(3)"}, env=env)
    run_job({"id": "a3", "code": "x", "bad": 1}, env=env)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["a1", "a2", "a3"]
    assert all(AUDIT_KEYS <= set(x) for x in lines)
    assert lines[0]["status"] == "ok" and lines[0]["error_code"] is None
    assert lines[1]["error_code"] == "RUNTIME_ERROR"
    assert lines[2]["error_code"] == "INVALID_JOB" and lines[2]["error_reason"] == "unknown_key:bad"
    assert "code" not in lines[0]
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_audit_log_concurrent_lines_never_interleave(tmp_path):
    log = tmp_path / "audit.jsonl"
    pol = tmp_path / "audit.json"
    pol.write_text(json.dumps({"name": "audited", "extends": str(POLICY / "default.json"),
                               "audit": {"path": "audit.jsonl", "include_code": True}}))
    big = "# " + "y" * 60000 + "\nresult = 1"

    def worker(i):
        for k in range(4):
            run_job({"id": f"w{i}-{k}", "code": big}, "--policy", str(pol))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log.read_text().splitlines()
    assert len(lines) == 24
    for x in lines:
        d = json.loads(x)
        assert d["code"] == big and d["policy"] == "audited"


def test_audit_log_unwritable_warns_but_result_stands(tmp_path):
    r = run_job({"code": "result = 5"}, env=env_with(PYCELL_AUDIT_LOG=str(tmp_path / "no" / "such" / "dir.log")))
    assert r.returncode == 0 and r.json["result"] == 5
    assert "audit log" in r.stderr
