"""Helpers for the resource and cleanup tests: an isolated cgroup parent,
lease directory and uid range per test session, and leftover checks."""
import os
import uuid
from pathlib import Path

from conftest import REPO

ABLATION = str(REPO / "tests" / "policies" / "ablation.json")
CG_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
IS_ROOT = os.geteuid() == 0
# Apart from the default range, and one slot per test session, so that test
# runs going on at the same time on this machine do not see each other's jobs.
UID_COUNT = 1024
UID_BASE = 0x71000000 + (os.getpid() % 4096) * UID_COUNT


def cgroup_version():
    try:
        if os.statvfs(str(CG_ROOT)) and (CG_ROOT / "cgroup.controllers").exists() and \
                "memory" in (CG_ROOT / "cgroup.controllers").read_text():
            return 2
    except OSError:
        pass
    return 1 if (CG_ROOT / "memory" / "tasks").exists() else 0


class Isolated:
    """Env for pycell with a private cgroup parent and lease directory."""

    def __init__(self, tmp):
        self.parent = f"pycell-test-{uuid.uuid4().hex[:8]}"
        self.lease_dir = Path(tmp) / "leases"
        self.env = dict(os.environ, PYCELL_CGROUP_PARENT=self.parent, PYCELL_LEASE_DIR=str(self.lease_dir),
                        PYCELL_UID_BASE=str(UID_BASE), PYCELL_UID_COUNT=str(UID_COUNT))

    def parent_dirs(self):
        if cgroup_version() == 2:
            return [CG_ROOT / self.parent]
        return [CG_ROOT / c / self.parent for c in V1_CONTROLLERS]

    def job_groups(self):
        return sorted(str(p) for d in self.parent_dirs() if d.is_dir() for p in d.iterdir()
                      if p.is_dir() and p.name.startswith("job-"))

    def leases(self):
        return sorted(p.name for p in self.lease_dir.glob("*.lock")) if self.lease_dir.is_dir() else []

    def cleanup(self):
        """Removes the test's cgroup parent, with `pycell gc` first for any
        job group a failed test left."""
        import subprocess
        from conftest import PYCELL
        if self.job_groups():
            subprocess.run([PYCELL, "gc"], env=self.env, capture_output=True, timeout=60)
        for d in self.parent_dirs():
            if d.is_dir():
                os.rmdir(d)


def leased_uid_processes():
    """pids of processes running with a uid from the test lease range."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            for line in (p / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                    if UID_BASE <= uid < UID_BASE + UID_COUNT:
                        found.append(int(p.name))
        except OSError:
            pass
    return found


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid):
    """pid's children (a single-threaded process: its main thread's list)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(x) for x in f.read().split()}
