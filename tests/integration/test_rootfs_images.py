"""Jobs from rootfs image files (erofs, squashfs): mounted read-only by the runtime as
root via a loop device, and nothing left behind (no loop device, no mount).

The images are packed from PYCELL_ROOTFS (default build/rootfs/minimal) into a temporary
directory with rootfs/pycell-rootfs image.
"""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import MUST_WORK, REPO, ROOTFS, run_exec, run_job

TOOL = REPO / "rootfs" / "pycell-rootfs"
ABLATION = str(REPO / "tests/policies/ablation.json")


def not_available(reason):
    if MUST_WORK:
        pytest.fail(f"{reason} (PYCELL_MUST_WORK=1)")
    pytest.skip(reason)


def loops():
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    return sorted(line for line in out.splitlines() if "pycell:" in line or "rootfs" in line)


def mounts():
    return sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.fixture(scope="module", params=["erofs", "squashfs"])
def image(request, tmp_path_factory):
    fmt = request.param
    if os.geteuid() != 0:
        not_available("mounting a rootfs image needs root")
    if fmt not in Path("/proc/filesystems").read_text():
        not_available(f"the kernel has no {fmt}")
    if not Path(f"{ROOTFS}.manifest.json").exists():
        not_available(f"no '{ROOTFS}.manifest.json': run 'make rootfs'")
    tool = "mkfs.erofs" if fmt == "erofs" else "mksquashfs"
    if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
        not_available(f"no {tool}: run 'make deps'")
    out = tmp_path_factory.mktemp("img") / f"rootfs.{fmt}"
    subprocess.run([str(TOOL), "image", "--quiet", "--format", fmt, "--out", str(out), str(ROOTFS)],
                   check=True, capture_output=True)
    return out


def test_job_runs_from_image_and_leaves_nothing(image):
    before_loops, before_mounts = loops(), mounts()
    r = run_exec("import sys; print('hi', sys.version_info[:2])", "--rootfs", str(image), "--policy", ABLATION)
    assert (r.returncode, r.stdout) == (0, "hi (3, 11)\n"), r.stderr
    assert loops() == before_loops
    assert mounts() == before_mounts


def test_image_root_is_read_only(image):
    code = ("import os\n"
            "try:\n    open('/usr/x', 'w')\nexcept OSError as e:\n    print(e.errno)\n"
            "print(os.statvfs('/').f_flag & os.ST_RDONLY != 0)\n"
            "print(open('/workspace/f', 'w').write('ok'))\n")
    r = run_exec(code, "--rootfs", str(image), "--policy", ABLATION)
    assert (r.returncode, r.stdout.split()) == (0, ["30", "True", "2"]), r.stderr


def test_run_result_from_image(image):
    r = run_job({"code": "result = 6 * 7"}, "--rootfs", str(image))
    assert r.json and r.json["status"] == "ok" and r.json["result"] == 42, r


def test_not_an_image(tmp_path):
    if os.geteuid() != 0:
        not_available("needs root")
    bogus = tmp_path / "rootfs.erofs"
    bogus.write_bytes(b"\0" * 4096)
    r = run_exec("print(1)", "--rootfs", str(bogus), "--policy", ABLATION)
    assert r.returncode != 0
    assert "neither an erofs nor a squashfs image" in r.stderr + r.stdout
