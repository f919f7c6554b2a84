"""Shared fixtures: drive the real pycell binary and read its JSON result."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYCELL = os.environ.get("PYCELL_BIN", str(REPO / "build" / "bin" / "pycell"))
ROOTFS = Path(os.environ.get("PYCELL_ROOTFS", REPO / "build" / "rootfs" / "minimal"))
DATASCI_ROOTFS = REPO / "build" / "rootfs" / "datasci"
# PYCELL_MUST_WORK=1 (CI) turns "not supported here" skips into failures.
MUST_WORK = os.environ.get("PYCELL_MUST_WORK") == "1"


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.json = None
        if proc.stdout.strip():
            try:
                self.json = json.loads(proc.stdout)
            except ValueError:
                self.json = None

    @property
    def code(self):
        err = (self.json or {}).get("error")
        return err and err.get("code")

    def __repr__(self):
        return f"<Result rc={self.returncode} json={self.json!r} stderr={self.stderr[-2000:]!r}>"


def run_job(job, *args, timeout=120, raw=None, env=None):
    """`pycell run -` with the job (a dict, or raw bytes/str) on stdin."""
    data = raw if raw is not None else json.dumps(job)
    if isinstance(data, str):
        data = data.encode()
    proc = subprocess.run([PYCELL, "run", *args, "-"], input=data, capture_output=True,
                          timeout=timeout, env=env)
    proc.stdout = proc.stdout.decode("utf-8", "strict")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return Result(proc)


def run_exec(code, *args, timeout=120, env=None):
    """`pycell exec -c CODE`; returns the CompletedProcess (text)."""
    return subprocess.run([PYCELL, "exec", *args, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def pycell_run():
    return run_job


@pytest.fixture
def pycell_exec():
    return run_exec


def pytest_configure(config):
    if not Path(PYCELL).exists():
        raise pytest.UsageError(f"{PYCELL} missing: run 'make' first")
