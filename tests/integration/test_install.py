"""`make install` gives a pycell that finds its policy, shim, pycell-init and
rootfs under PREFIX without any flag (DESIGN.md section 4)."""
import shutil
import subprocess
import tempfile
from pathlib import Path

from conftest import REPO


def test_installed_pycell_runs_a_job_without_flags():
    base = REPO / "build" / "test-tmp"
    base.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(dir=base))
    try:
        dest.chmod(0o755)  # the sandbox's unprivileged uid must reach the installed rootfs
        subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr/local"], cwd=REPO, check=True,
                       capture_output=True, timeout=300)
        pycell = dest / "usr/local/bin/pycell"
        assert (dest / "usr/local/libexec/pycell/pycell-init").is_file()
        assert (dest / "usr/local/share/pycell/policy/default.json").is_file()
        proc = subprocess.run([str(pycell), "exec", "-c", "print(6 * 7)"], capture_output=True, text=True,
                              timeout=60)
        assert (proc.returncode, proc.stdout) == (0, "42\n"), proc.stderr
        # it uses the installed copies, not the build tree's
        show = subprocess.run([str(pycell), "policy", "show"], capture_output=True, text=True, check=True)
        assert str(dest / "usr/local/share/pycell/policy/default.json") in show.stdout
    finally:
        shutil.rmtree(dest)
