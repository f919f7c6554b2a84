"""cgroup v1 layouts this host does not have: cpu and cpuacct co-mounted as
one hierarchy reached through two names (systemd's "cpu,cpuacct"). pycell
makes the job's group there once (the second mkdir meets the first group:
same directory, shared), enforces the limits and removes every group. The
layout is rebuilt with bind mounts of this host's hierarchies in a private
mount namespace, and PYCELL_CGROUP_ROOT points pycell at it."""
import json
import subprocess

import pytest

from conftest import PYCELL
from resctl import ABLATION, CG_ROOT, IS_ROOT, Isolated, cgroup_version, leased_uid_processes

pytestmark = pytest.mark.skipif(not IS_ROOT or cgroup_version() != 1, reason="needs root on a cgroup v1 host")


def run_in_layout(iso, root, layout, job, links=None):
    binds = "; ".join([f"mkdir -p {root}/{name} && mount --bind {CG_ROOT}/{real} {root}/{name}"
                       for name, real in layout.items()] +
                      [f"ln -sfn {target} {root}/{name}" for name, target in (links or {}).items()])
    env = dict(iso.env, PYCELL_CGROUP_ROOT=str(root))
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec",
                        f'{binds}; exec "$0" run --policy {ABLATION} -', PYCELL],
                       input=json.dumps(job).encode(), capture_output=True, env=env, timeout=120)
    assert p.stdout, p.stderr
    return json.loads(p.stdout)


def test_cpu_and_cpuacct_as_one_hierarchy(tmp_path):
    iso = Isolated(tmp_path)
    layout = {"memory": "memory", "pids": "pids", "cpu": "cpu", "cpuacct": "cpu"}
    try:
        ok = run_in_layout(iso, tmp_path / "cg", layout, {"code": "print('fine')"})
        assert ok["status"] == "ok", ok
        assert ok["metrics"]["cgroup_version"] == 1 and ok["metrics"]["unapplied_limits"] == [], ok
        bomb = run_in_layout(iso, tmp_path / "cg", layout,
                             {"code": "import os\nwhile True:\n    os.fork()", "limits": {"pids": 32}})
        assert bomb["error"]["code"] == "PIDS_LIMIT", bomb
        assert bomb["error"]["details"]["evidence"] == "pids.events max", bomb
        assert iso.job_groups() == [], "job cgroups left behind"
    finally:
        iso.cleanup()


def test_cpu_and_cpuacct_as_symlinks_to_one_hierarchy(tmp_path):
    """systemd's v1 layout: cpu -> cpu,cpuacct and cpuacct -> cpu,cpuacct.
    The first job under a new parent makes that parent through the links.
    (The stand-in hierarchy is this host's cpu one, which has no cpuacct
    files, so cpu accounting cannot be checked here.)"""
    iso = Isolated(tmp_path)
    layout = {"memory": "memory", "pids": "pids", "cpu,cpuacct": "cpu"}
    links = {"cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct"}
    try:
        for _ in range(2):  # the first job makes the parent, the second finds it
            ok = run_in_layout(iso, tmp_path / "cg", layout, {"code": "print('fine')"}, links)
            assert ok["status"] == "ok", ok
            assert ok["metrics"]["cgroup_version"] == 1 and ok["metrics"]["unapplied_limits"] == [], ok
        bomb = run_in_layout(iso, tmp_path / "cg", layout,
                             {"code": "import os\nwhile True:\n    os.fork()", "limits": {"pids": 32}}, links)
        assert bomb["error"]["code"] == "PIDS_LIMIT", bomb
        assert iso.job_groups() == [], "job cgroups left behind"
    finally:
        iso.cleanup()


def test_a_group_that_cannot_be_made_fails_the_job_and_leaves_nothing(tmp_path):
    """A read-only cpu hierarchy fails the job's third mkdir, after its
    memory and pids groups were made: the job is refused with the cgroup
    named, and those groups, the uid lease and every process are gone."""
    iso = Isolated(tmp_path)
    root = tmp_path / "cg"
    layout = {"memory": "memory", "pids": "pids", "cpu": "cpu", "cpuacct": "cpuacct"}
    binds = "; ".join(f"mkdir -p {root}/{n} && mount --bind {CG_ROOT}/{r} {root}/{n}" for n, r in layout.items())
    # the parent exists already, as after any earlier job: only the job's own mkdir fails
    ro = f"mkdir -p {root}/cpu/{iso.parent} && mount -o remount,bind,ro {root}/cpu"
    try:
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec",
                            f'{binds}; {ro}; exec "$0" run --policy {ABLATION} -', PYCELL],
                           input=json.dumps({"code": "print('never')"}).encode(), capture_output=True,
                           env=dict(iso.env, PYCELL_CGROUP_ROOT=str(root)), timeout=120)
        assert p.stdout, p.stderr
        doc = json.loads(p.stdout)
        assert p.returncode == 125 and doc["error"]["code"] == "INTERNAL_ERROR", doc
        assert f"mkdir cgroup 'cpu/{iso.parent}/job-" in doc["error"]["message"], doc
        assert doc["error"]["details"]["errno"] == 30, doc  # EROFS
        assert doc["stdout"] == "", doc
        assert iso.job_groups() == [], "job cgroups left behind"
        assert iso.leases() == [] and leased_uid_processes() == [], "the sandbox was left behind"
    finally:
        iso.cleanup()
