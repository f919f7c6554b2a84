"""rootfs/pycell-rootfs: hardening rules on deliberately bad trees, manifest and verify,
reproducible builds and images.

The rule tests build a tiny fake tree (no apt, seconds); they need root for chown.
The tests on a real build use PYCELL_ROOTFS (default build/rootfs/minimal) and copy
it before changing anything. PYCELL_SLOW=1 (or PYCELL_MUST_WORK=1) adds the
two-builds reproducibility test, which runs the builder twice from the .deb cache.
"""

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "rootfs" / "pycell-rootfs"
ROOTFS = Path(os.environ.get("PYCELL_ROOTFS", REPO / "build/rootfs/minimal"))
if not ROOTFS.is_absolute():
    ROOTFS = REPO / ROOTFS
MUST_WORK = os.environ.get("PYCELL_MUST_WORK") == "1"
SLOW = MUST_WORK or os.environ.get("PYCELL_SLOW") == "1"
EPOCH = 1700000000
LIB = "usr/lib/python3.11"


def not_available(reason):
    if MUST_WORK:
        pytest.fail(f"{reason} (PYCELL_MUST_WORK=1)")
    pytest.skip(reason)


def tool(*args, check=None):
    r = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=600)
    if check is not None:
        assert r.returncode == check, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def pyc_for(src: Path, flags=0b01):
    d = src.parent / "__pycache__"
    d.mkdir(exist_ok=True)
    (d / f"{src.stem}.cpython-311.pyc").write_bytes(b"\xa7\r\r\n" + flags.to_bytes(4, "little") + b"\0" * 16)


def normalise(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames + [""]:
            p = Path(dirpath, n) if n else Path(dirpath)
            os.lchown(p, 0, 0)
            if not p.is_symlink():
                os.chmod(p, 0o755 if p.is_dir() or os.access(p, os.X_OK) else 0o644)
            os.utime(p, (EPOCH, EPOCH), follow_symlinks=False)


HOST_LIB = Path("/lib/x86_64-linux-gnu/libmnl.so.0")  # any small library (libmnl-dev is a build dependency)
FAKE_LIB = "lib/x86_64-linux-gnu/libmnl.so.0"


def _ld_cache(root):
    """The loader's cache of `root`, as build-rootfs writes it."""
    (root / "etc/ld.so.conf").write_text("/lib/x86_64-linux-gnu\n")
    subprocess.run([shutil.which("ldconfig") or "/sbin/ldconfig", "-X", "-r", str(root)], check=True)


def _stale_ld_cache(root):
    lib = root / FAKE_LIB
    lib.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HOST_LIB.resolve(), lib)
    _ld_cache(root)
    lib.unlink()


@pytest.fixture
def fake(tmp_path):
    """A minimal tree that passes every rule, with a fresh manifest."""
    if os.geteuid() != 0:
        not_available("building a root-owned tree needs root")
    root = tmp_path / "tree"
    (root / "usr/bin").mkdir(parents=True)
    py = root / "usr/bin/python3.11"
    py.write_bytes(b"\x7fELF fake interpreter")
    py.chmod(0o755)
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / LIB / "json").mkdir(parents=True)
    for src in (root / LIB / "json/__init__.py", root / LIB / "os.py"):
        src.write_text("x = 1\n")
        pyc_for(src)
    dist = root / "usr/lib/python3/dist-packages/six-1.16.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nbody\n")
    for d in ("workspace", "tmp", "dev", "proc", ".pycell", "etc"):
        (root / d).mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/:/nonexistent\n")
    _ld_cache(root)
    normalise(root)
    tool("manifest", "--write", root, check=0)
    return root


def test_good_fake_tree_verifies(fake):
    r = tool("verify", fake, check=0)
    assert "all 13 hardening rules pass" in r.stdout
    m = json.loads(Path(f"{fake}.manifest.json").read_text())
    assert m["python"] == "3.11" and m["source_date_epoch"] == EPOCH
    assert m["python_distributions"] == [{"name": "six", "version": "1.16.0"}]
    assert m["files"] == sum(1 for v in m["tree"].values() if v.startswith("f "))


def test_packages_lists_distributions(fake):
    assert tool("packages", fake, check=0).stdout == "six 1.16.0\n"
    assert json.loads(tool("packages", "--json", fake, check=0).stdout) == [{"name": "six", "version": "1.16.0"}]


def _file(root, rel, data=b"x", mode=0o755):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    return p


# Each case breaks one rule (a mode rule or the bin-dir rule may fire alongside); the
# check must fail that rule and name the path.
SECONDARY = {"read-only-modes", "only-the-interpreter", "bytecode"}
BAD = {
    "shell": ("no-shells", lambda r: _file(r, "bin/sh"), "/bin/sh"),
    "busybox": ("no-shells", lambda r: _file(r, "usr/lib/busybox"), "/usr/lib/busybox"),
    "dpkg": ("no-package-managers", lambda r: (r / "var/lib/dpkg").mkdir(parents=True), "/var/lib/dpkg"),
    "pip": ("no-package-managers", lambda r: _file(r, "usr/lib/python3/dist-packages/pip/__init__.py", mode=0o644),
            "/usr/lib/python3/dist-packages/pip"),
    "venv": ("no-package-managers", lambda r: (r / LIB / "venv").mkdir(), f"/{LIB}/venv"),
    "ensurepip": ("no-package-managers", lambda r: (r / LIB / "ensurepip").mkdir(), f"/{LIB}/ensurepip"),
    "compiler": ("no-compilers", lambda r: _file(r, "usr/lib/gcc/x86_64-linux-gnu/12/cc1"),
                 "/usr/lib/gcc/x86_64-linux-gnu/12/cc1"),
    "program": ("only-the-interpreter", lambda r: _file(r, "usr/bin/curl"), "/usr/bin/curl"),
    "setuid": ("no-setuid", lambda r: os.chmod(r / "usr/bin/python3.11", 0o4755), "/usr/bin/python3.11"),
    "setgid-dir": ("no-setuid", lambda r: os.chmod(r / "etc", 0o2755), "/etc"),
    "device": ("no-device-nodes", lambda r: os.mknod(r / "dev/null", 0o644 | stat.S_IFCHR, os.makedev(1, 3)),
               "/dev/null"),
    "fifo": ("no-device-nodes", lambda r: os.mkfifo(r / "tmp/f"), "/tmp/f"),
    "world-writable-dir": ("no-writable", lambda r: os.chmod(r / "tmp", 0o1777), "/tmp"),
    "group-writable": ("no-writable", lambda r: os.chmod(r / "etc/passwd", 0o664), "/etc/passwd"),
    "not-root": ("root-owned", lambda r: os.chown(r / "etc/passwd", 1000, 1000), "/etc/passwd"),
    "odd-mode": ("read-only-modes", lambda r: os.chmod(r / "etc/passwd", 0o600), "/etc/passwd"),
    "docs": ("no-docs", lambda r: (r / "usr/share/doc").mkdir(parents=True), "/usr/share/doc"),
    "locale": ("no-docs", lambda r: (r / "usr/share/locale").mkdir(parents=True), "/usr/share/locale"),
    "test-suite": ("no-test-suites", lambda r: (r / LIB / "json/tests").mkdir(), f"/{LIB}/json/tests"),
    "idlelib": ("no-test-suites", lambda r: (r / LIB / "idlelib").mkdir(), f"/{LIB}/idlelib"),
    "tkinter": ("no-test-suites", lambda r: (r / LIB / "tkinter").mkdir(), f"/{LIB}/tkinter"),
    "turtle": ("no-test-suites", lambda r: _file(r, f"{LIB}/turtle.py", mode=0o644), f"/{LIB}/turtle.py"),
    "no-pyc": ("bytecode", lambda r: _file(r, f"{LIB}/fresh.py", mode=0o644), f"/{LIB}/fresh.py"),
    "checked-pyc": ("bytecode", lambda r: pyc_for(r / LIB / "os.py", flags=0b11), f"/{LIB}/os.py"),
    "no-ld-cache": ("ld-cache", lambda r: (r / "etc/ld.so.cache").unlink(), "/etc/ld.so.cache"),
    "stale-ld-cache": ("ld-cache", _stale_ld_cache, f"/etc/ld.so.cache -> /{FAKE_LIB}"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_tree_fails_check_and_verify(fake, case):
    rule, breaker, path = BAD[case]
    breaker(fake)
    r = tool("check", fake, check=1)
    fails = {line.split()[1].rstrip(":") for line in r.stdout.splitlines() if "FAIL" in line}
    assert rule in fails and fails <= {rule} | SECONDARY, r.stdout
    section = re.split(r"\n  (?:ok|FAIL) ", r.stdout.split(f"FAIL {rule}:", 1)[1])[0]
    assert f"\n       {path}\n" in section + "\n", r.stdout
    r = tool("verify", fake, check=1)
    assert f"FAIL {rule}:" in r.stdout and path in r.stdout, r.stdout


def test_verify_names_changed_added_and_missing_paths(fake):
    p = fake / LIB / "os.py"
    data = bytearray(p.read_bytes())
    data[0] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, (EPOCH, EPOCH))
    (fake / "etc/passwd").unlink()
    _file(fake, "etc/extra", mode=0o644)
    os.utime(fake / "etc/extra", (EPOCH, EPOCH))
    r = tool("verify", fake, check=1)
    assert f"changed  /{LIB}/os.py" in r.stdout
    assert "missing  /etc/passwd" in r.stdout
    assert "added    /etc/extra" in r.stdout


def test_verify_catches_mtime_and_owner_drift(fake):
    os.utime(fake / "etc/passwd", (EPOCH + 1, EPOCH + 1))
    r = tool("verify", fake, check=1)
    assert "changed  /etc/passwd" in r.stdout


def test_verify_expect_and_missing_manifest(fake, tmp_path):
    digest = json.loads(Path(f"{fake}.manifest.json").read_text())["tree_sha256"]
    tool("verify", "--expect", digest, fake, check=0)
    assert "!= expected" in tool("verify", "--expect", "0" * 64, fake, check=1).stdout
    r = tool("verify", tmp_path, check=2)
    assert "no manifest" in r.stderr


# --- on a real build -------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_copy(tmp_path_factory):
    if not (ROOTFS / "usr/bin/python3.11").exists():
        not_available(f"no rootfs at '{ROOTFS}': run 'make rootfs'")
    if os.geteuid() != 0:
        not_available("copying a root-owned tree needs root")
    if not Path(f"{ROOTFS}.manifest.json").exists():
        not_available(f"no '{ROOTFS}.manifest.json': rebuild with 'make rootfs'")
    tool("verify", ROOTFS, check=0)
    return ROOTFS


@pytest.fixture
def copy(real_copy, tmp_path):
    dst = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(real_copy), str(dst)], check=True)
    shutil.copy(f"{real_copy}.manifest.json", f"{dst}.manifest.json")
    tool("verify", dst, check=0)
    return dst


def test_real_one_byte_changed(copy):
    p = copy / LIB / "json/encoder.py"
    data = bytearray(p.read_bytes())
    data[100] ^= 0x20
    p.write_bytes(bytes(data))
    os.utime(p, (os.stat(copy).st_mtime,) * 2)
    r = tool("verify", copy, check=1)
    assert f"changed  /{LIB}/json/encoder.py" in r.stdout, r.stdout


def test_real_setuid_added(copy):
    os.chmod(copy / "usr/bin/python3.11", 0o4755)
    r = tool("verify", copy, check=1)
    assert "changed  /usr/bin/python3.11" in r.stdout
    assert "FAIL no-setuid" in r.stdout and "/usr/bin/python3.11" in r.stdout


def test_real_shell_dropped_in(copy):
    (copy / "bin").mkdir(exist_ok=True)
    shutil.copy("/bin/dash", copy / "bin/sh")
    r = tool("verify", copy, check=1)
    assert "added    /bin/sh" in r.stdout
    assert "FAIL no-shells" in r.stdout


# --- reproducibility ---------------------------------------------------------------

def test_two_builds_same_tree_hash_and_images(tmp_path):
    if not SLOW:
        pytest.skip("set PYCELL_SLOW=1: builds 'minimal' twice (about 15 s with a warm .deb cache)")
    if os.geteuid() != 0:
        not_available("building needs root")
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    hashes, images = [], []
    for name in ("one", "two"):
        out = tmp_path / name
        subprocess.run([str(TOOL), "build", "--quiet", "--profile", "minimal", "--out", str(out),
                        "--image", "erofs"], check=True, env=env, capture_output=True, timeout=900)
        hashes.append(json.loads(Path(f"{out}.manifest.json").read_text())["tree_sha256"])
        images.append(hashlib.sha256(Path(f"{out}.erofs").read_bytes()).hexdigest())
        tool("verify", out, check=0)
    assert hashes[0] == hashes[1]
    assert images[0] == images[1]
