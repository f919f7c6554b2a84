"""The compiled seccomp program is cached by a hash of its inputs; a cached
program must filter exactly like a fresh one, and an entry that is not to be
trusted is ignored, never loaded."""
import json
import os
import subprocess

from conftest import PYCELL, REPO


def policy_entry(cache, insns):
    """The cached policy program (the exec filter has an entry of its own)."""
    (entry,) = [e for e in cache.iterdir() if e.stat().st_size == insns * 8]
    return entry


def run(env, code="pass"):
    proc = subprocess.run([PYCELL, "run", "-"], input=json.dumps({"code": code}), capture_output=True,
                          text=True, timeout=60, env=env)
    return json.loads(proc.stdout)


def probe(env, *names):
    proc = subprocess.run([PYCELL, "exec", "--probe", "--", "try", *names], capture_output=True, text=True,
                          timeout=60, env=env)
    return dict(line.split()[:2] for line in proc.stdout.splitlines() if line.strip()), proc.stderr


def test_second_run_uses_the_cache_and_filters_the_same(tmp_path):
    env = dict(os.environ, PYCELL_CACHE_DIR=str(tmp_path / "bpf"))
    first, second = run(env), run(env)
    assert first["layers"]["seccomp"]["cached"] is False
    assert second["layers"]["seccomp"]["cached"] is True
    assert first["layers"]["seccomp"]["bpf_instructions"] == second["layers"]["seccomp"]["bpf_instructions"]
    entries = os.listdir(tmp_path / "bpf")
    # the policy's program and the exec filter, each named by its key
    assert len(entries) == 2 and all(len(e) == 64 for e in entries)
    assert policy_entry(tmp_path / "bpf", first["layers"]["seccomp"]["bpf_instructions"])
    names = ("getpid", "socket_netlink", "clone3", "unshare_user")
    fresh, fresh_err = probe(dict(os.environ, PYCELL_CACHE_DIR=str(tmp_path / "other")), *names)
    cached, cached_err = probe(env, *names)
    assert cached == fresh == {"getpid": "OK", "socket_netlink": "EPERM", "clone3": "ENOSYS"}
    assert "SECURITY_ERROR" in cached_err and "'unshare'" in cached_err
    assert cached_err == fresh_err


def test_untrusted_or_damaged_entries_are_ignored(tmp_path):
    cache = tmp_path / "bpf"
    env = dict(os.environ, PYCELL_CACHE_DIR=str(cache))
    entry = policy_entry(cache, run(env)["layers"]["seccomp"]["bpf_instructions"])
    # A truncated program (not a whole number of instructions) is not loaded.
    entry.write_bytes(entry.read_bytes()[:13])
    res = run(env)
    assert res["status"] == "ok" and res["layers"]["seccomp"]["cached"] is False
    # A world-writable entry is not trusted either.
    os.chmod(entry, 0o666)
    res = run(env)
    assert res["layers"]["seccomp"]["cached"] is False


def test_a_changed_list_gets_a_new_entry(tmp_path):
    cache = tmp_path / "bpf"
    env = dict(os.environ, PYCELL_CACHE_DIR=str(cache))
    run(env)
    policy = tmp_path / "p.json"
    seccomp = json.loads((REPO / "policy" / "seccomp" / "default.json").read_text())
    seccomp["description"] = "a different list"
    (tmp_path / "s.json").write_text(json.dumps(seccomp))
    policy.write_text(json.dumps({"extends": str(REPO / "policy" / "default.json"), "seccomp": "s.json"}))
    proc = subprocess.run([PYCELL, "run", "--policy", str(policy), "-"], input='{"code": "pass"}',
                          capture_output=True, text=True, timeout=60, env=env)
    assert json.loads(proc.stdout)["layers"]["seccomp"]["cached"] is False
    assert len(os.listdir(cache)) == 3  # two policy programs, one exec filter
