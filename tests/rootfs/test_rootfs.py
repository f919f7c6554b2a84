"""Checks on a rootfs built by rootfs/build-rootfs.

PYCELL_ROOTFS names the tree (default: build/rootfs/minimal in the repository).
A missing tree, or the chroot checks when not root, are skips, unless
PYCELL_MUST_WORK=1 makes them failures.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTFS = Path(os.environ.get("PYCELL_ROOTFS", REPO / "build/rootfs/minimal"))
if not ROOTFS.is_absolute():
    ROOTFS = REPO / ROOTFS
MUST_WORK = os.environ.get("PYCELL_MUST_WORK") == "1"

PY = "python3.11"
STDLIB = f"/usr/lib/{PY}"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
MOUNT_POINTS = ["workspace", "tmp", "dev", "proc", ".pycell"]
STDLIB_IMPORTS = ("json math statistics re datetime decimal hashlib sqlite3 ctypes "
                  "zlib bz2 lzma multiprocessing threading").split()
SHELLS = {"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "csh", "tcsh", "busybox",
          "rbash", "toybox"}
PACKAGE_TOOLS = {"apt", "apt-get", "apt-cache", "apt-key", "dpkg", "dpkg-deb", "dpkg-query",
                 "pip", "pip3", f"pip{PY[6:]}", "debconf", "perl"}


def not_available(reason):
    if MUST_WORK:
        pytest.fail(f"{reason} (PYCELL_MUST_WORK=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def root():
    if not (ROOTFS / "usr/bin" / PY).exists():
        not_available(f"no rootfs at '{ROOTFS}': run 'make rootfs' or set PYCELL_ROOTFS")
    return ROOTFS


@pytest.fixture(scope="module")
def entries(root):
    """(path relative to the rootfs, lstat result) for every entry, the root included."""
    out = [(Path("/"), os.lstat(root))]
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            out.append((Path("/") / path.relative_to(root), os.lstat(path)))
    assert len(out) > 100, f"'{root}' holds only {len(out)} entries"
    return out


def in_image(root, *args, **kw):
    """Runs the image's interpreter via chroot with the sandbox's flags."""
    if os.geteuid() != 0:
        not_available("chroot needs root")
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    env = kw.pop("env", {})
    return subprocess.run([chroot, str(root), f"/usr/bin/{PY}", "-I", "-S", "-B", *args],
                          capture_output=True, text=True, timeout=60, env=env, **kw)


def test_no_shells(entries):
    found = [str(p) for p, _ in entries if p.name in SHELLS]
    assert not found, f"shells in the image: {found}"


def test_no_package_managers(root, entries):
    found = [str(p) for p, _ in entries if p.name in PACKAGE_TOOLS]
    assert not found, f"package tools in the image: {found}"
    for path in ["var/lib/dpkg", "etc/apt", f"usr/lib/{PY}/ensurepip"]:
        assert not (root / path).exists(), f"'/{path}' is in the image"


def test_only_the_interpreter_is_a_program(root):
    for d in ["bin", "sbin", "usr/sbin", "usr/local/bin", "usr/local/sbin"]:
        assert not (root / d).exists() or not any((root / d).iterdir()), f"'/{d}' is not empty"
    assert sorted(p.name for p in (root / "usr/bin").iterdir()) == ["python3", PY]
    assert os.readlink(root / "usr/bin/python3") == PY
    assert stat.S_ISREG(os.lstat(root / "usr/bin" / PY).st_mode)


def test_no_setuid_or_setgid(entries):
    found = [str(p) for p, st in entries
             if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID)]
    assert not found, f"setuid/setgid entries: {found}"


def test_nothing_writable_but_by_root(entries):
    found = [f"{p} {stat.filemode(st.st_mode)}" for p, st in entries
             if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
    assert not found, f"group- or world-writable entries: {found}"


def test_modes_are_normalised(entries):
    bad = [f"{p} {stat.filemode(st.st_mode)}" for p, st in entries
           if not stat.S_ISLNK(st.st_mode)
           and stat.S_IMODE(st.st_mode) not in ((0o755,) if stat.S_ISDIR(st.st_mode)
                                                else (0o644, 0o755))]
    assert not bad, f"modes other than 0755 dirs and 0644/0755 files: {bad}"


def test_no_device_nodes_or_special_files(entries):
    found = [f"{p} {stat.filemode(st.st_mode)}" for p, st in entries
             if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
                     or stat.S_ISLNK(st.st_mode))]
    assert not found, f"device nodes, fifos or sockets: {found}"


def test_everything_owned_by_root(entries):
    found = [f"{p} {st.st_uid}:{st.st_gid}" for p, st in entries
             if (st.st_uid, st.st_gid) != (0, 0)]
    assert not found, f"entries not owned by root:root: {found}"


def test_one_fixed_mtime(entries):
    mtimes = {int(st.st_mtime) for _, st in entries}
    assert len(mtimes) == 1, f"{len(mtimes)} distinct mtimes, expected one (SOURCE_DATE_EPOCH)"


@pytest.mark.parametrize("name", MOUNT_POINTS)
def test_mount_point_exists_and_is_empty(root, name):
    path = root / name
    assert path.is_dir() and not path.is_symlink(), f"'/{name}' is not a directory"
    assert list(path.iterdir()) == [], f"'/{name}' is not empty"


def test_passwd_and_group(root):
    passwd = {line.split(":")[0]: line.split(":")
              for line in (root / "etc/passwd").read_text().splitlines()}
    assert passwd["root"][2:4] == ["0", "0"]
    assert passwd["sandbox"][2:] == ["1000", "1000", "pycell sandbox", "/workspace",
                                     "/nonexistent"]
    groups = {line.split(":")[0]: line.split(":")
              for line in (root / "etc/group").read_text().splitlines()}
    assert groups["root"][2] == "0" and groups["sandbox"][2] == "1000"


def test_debian_paths_are_kept(root):
    for d in ["lib", "lib64", "usr/lib"]:
        assert (root / d).is_dir() and not (root / d).is_symlink(), f"'/{d}' is merged or missing"
    loader = root / "lib64/ld-linux-x86-64.so.2"
    assert loader.is_symlink() and (root / os.readlink(loader).lstrip("/")).is_file()


def test_no_docs_or_stdlib_test_suites(root, entries):
    for path in ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                 "usr/share/lintian", f"usr/lib/{PY}/test", f"usr/lib/{PY}/idlelib",
                 f"usr/lib/{PY}/tkinter", f"usr/lib/{PY}/turtledemo"]:
        assert not (root / path).exists(), f"'/{path}' is in the image"
    suites = [str(p) for p, st in entries if stat.S_ISDIR(st.st_mode)
              and p.name in ("test", "tests") and str(p).startswith(STDLIB)]
    assert not suites, f"stdlib test suites left: {suites}"


@pytest.mark.parametrize("module", ["json/__init__", "statistics", "re/__init__", "decimal"])
def test_stdlib_is_byte_compiled_unchecked_hash(root, module):
    src = root / STDLIB.lstrip("/") / f"{module}.py"
    pyc = src.parent / "__pycache__" / f"{src.stem}.cpython-311.pyc"
    assert pyc.is_file(), f"no '{pyc}'"
    header = pyc.read_bytes()[:16]
    flags = int.from_bytes(header[4:8], "little")
    assert flags == 0b01, f"'{pyc}' flags {flags:#b}: want hash-based, unchecked (0b01)"


def test_stdlib_imports(root):
    code = f"import {', '.join(STDLIB_IMPORTS)}; print('ok')"
    r = in_image(root, "-c", code)
    assert (r.returncode, r.stdout.strip()) == (0, "ok"), r.stderr


def test_libraries_come_from_the_loaders_cache(root):
    # Every library the interpreter and the stdlib's extension modules load
    # is found through /etc/ld.so.cache: no directory is searched.
    r = in_image(root, "-c", f"import {', '.join(STDLIB_IMPORTS)}", env={"LD_DEBUG": "libs"})
    assert r.returncode == 0, r.stderr
    assert "search cache=/etc/ld.so.cache" in r.stderr, r.stderr
    assert "search path=" not in r.stderr, r.stderr


def test_imports_load_the_pyc(root):
    r = in_image(root, "-v", "-c", "import json")
    assert r.returncode == 0, r.stderr
    pyc = f"{STDLIB}/json/__pycache__/__init__.cpython-311.pyc"
    assert f"code object from '{pyc}'" in r.stderr
    assert f"code object from {STDLIB}/json/__init__.py" not in r.stderr


def test_pyc_names_the_sandbox_path(root):
    code = ("import marshal, json, statistics\n"
            "for m in (json, statistics):\n"
            "    data = open(m.__spec__.cached, 'rb').read()\n"
            "    print(marshal.loads(data[16:]).co_filename)\n")
    r = in_image(root, "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"{STDLIB}/json/__init__.py", f"{STDLIB}/statistics.py"]


def test_every_module_has_a_pyc(root):
    missing = []
    for top in (STDLIB, DIST_PACKAGES):
        for src in (root / top.lstrip("/")).rglob("*.py"):
            pyc = src.parent / "__pycache__" / f"{src.stem}.cpython-311.pyc"
            if not pyc.is_file():
                missing.append(str(src.relative_to(root)))
    assert not missing, f"{len(missing)} modules without .pyc, e.g. {missing[:5]}"


def test_numpy_only_in_datasci(root):
    has_numpy = (root / DIST_PACKAGES.lstrip("/") / "numpy").is_dir()
    if root.name != "datasci":
        # `make test` runs this file on both trees; minimal stays numpy-free.
        assert not has_numpy, f"{root} is not the datasci profile but ships numpy"
        return
    assert has_numpy
    code = (f"import sys; sys.path.append('{DIST_PACKAGES}')\n"
            "import numpy as np\n"
            "a = np.arange(1, 10, dtype=float).reshape(3, 3) + np.eye(3)\n"
            "print(np.allclose(np.linalg.inv(a) @ a, np.eye(3)))\n")
    r = in_image(root, "-c", code)
    assert (r.returncode, r.stdout.strip()) == (0, "True"), r.stderr
