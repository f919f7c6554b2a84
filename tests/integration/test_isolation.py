"""Issue 2: a job runs in its own namespaces on a read-only rootfs, sees no
host path, and leaves nothing behind. Each test asserts from inside the
sandbox, with the Python layer off (ablation policy) so only the kernel
layers are under test."""
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import PYCELL, REPO, run_exec
from resctl import alive

ABLATION = str(REPO / "tests" / "policies" / "ablation.json")


def inside(code, *args, **kw):
    proc = run_exec(code, "--policy", ABLATION, *args, **kw)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_exec_prints_and_exits_with_job_status():
    proc = run_exec("print(2+2)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "4\n"
    proc = run_exec("import sys; sys.exit(7)", "--policy", ABLATION)
    assert proc.returncode == 7


def test_exec_script_file(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("print('from a file')\n")
    proc = subprocess.run([PYCELL, "exec", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from a file\n"


@pytest.mark.parametrize("ns", ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"])
def test_every_namespace_is_new(ns):
    host = os.readlink(f"/proc/self/ns/{ns}")
    job = inside(f"import os; print(os.readlink('/proc/self/ns/{ns}'))").strip()
    assert job.startswith(f"{ns}:[")
    assert job != host


def test_uid_maps_to_one_unprivileged_id():
    out = inside("print(open('/proc/self/uid_map').read().split())")
    inner, outer, count = eval(out)  # a list of three numbers printed by us
    assert inner == "1000" and count == "1"
    assert int(outer) != 0


def test_job_runs_as_sandbox_user_and_sees_sandbox_root():
    out = inside("import os; print(os.getuid(), os.getgid(), sorted(os.listdir('/')))")
    uid, gid, rest = out.split(" ", 2)
    assert (uid, gid) == ("1000", "1000")
    names = eval(rest)
    assert "workspace" in names and "usr" in names
    assert "root" not in names and "home" not in names and "sys" not in names


def test_only_loopback_exists():
    # if_nameindex() asks over netlink, which seccomp denies: read procfs.
    out = inside("print([l.split(':')[0].strip() for l in open('/proc/self/net/dev').readlines()[2:]])")
    assert eval(out) == ["lo"]


def test_rootfs_is_read_only():
    out = inside(
        "import errno\n"
        "for p in ['/usr/newfile', '/etc/passwd', '/newfile']:\n"
        "    try:\n"
        "        open(p, 'w')\n"
        "        print('WROTE', p)\n"
        "    except OSError as e:\n"
        "        print(errno.errorcode[e.errno])\n")
    assert out.split() == ["EROFS", "EROFS", "EROFS"]


def test_workdir_is_writable_and_capped():
    job = {
        "code": "import errno, os\n"
                "print(os.getcwd())\n"
                "open('small.txt', 'w').write('hello')\n"
                "print(open('small.txt').read())\n"
                "try:\n"
                "    with open('big.bin', 'wb') as f:\n"
                "        f.write(b'x' * (3 * 1024 * 1024))\n"
                "    print('NO CAP')\n"
                "except OSError as e:\n"
                "    print(errno.errorcode[e.errno])\n",
        "limits": {"tmpfs_mb": 1},
    }
    proc = subprocess.run([PYCELL, "run", "--policy", ABLATION, "-"], input=json.dumps(job),
                          capture_output=True, text=True, timeout=60)
    res = json.loads(proc.stdout)
    assert res["stdout"].split() == ["/workspace", "hello", "ENOSPC"], res


def test_host_paths_are_not_visible():
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else "no-such"
    code = (
        "import os\n"
        f"print(os.path.exists({str(REPO)!r}), os.path.exists('/root'), os.path.exists('/sys'))\n"
        "try:\n"
        "    print(open('/etc/hostname').read().strip())\n"
        "except OSError:\n"
        "    print('-')\n"
        "import socket; print(socket.gethostname())\n")
    out = inside(code).split("\n")
    assert out[0] == "False False False"
    assert out[1] != hostname or hostname == "-"
    assert out[2] == "pycell"


def test_job_sees_only_its_own_processes():
    out = inside("import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    # pid 1 is pycell-init, pid 2 the job itself.
    assert eval(out) == [1, 2]


def test_proc_hides_system_files():
    out = inside("import os; print(sorted(n for n in ['sys', 'kcore', 'sysrq-trigger', 'kallsyms'] "
                 "if os.path.exists('/proc/' + n)))")
    assert eval(out) == []


def test_dev_has_exactly_the_safe_nodes():
    out = inside("import os; print(sorted(os.listdir('/dev')))")
    # shm is a capped, noexec tmpfs for POSIX semaphores (multiprocessing).
    assert eval(out) == ["fd", "full", "null", "random", "shm", "urandom", "zero"]


def _host_state():
    mounts = Path("/proc/self/mountinfo").read_text()
    procs = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if b"pycell-init" in (p / "cmdline").read_bytes() or \
                        (p / "exe").resolve().name == "pycell-init":
                    procs.add(p.name)
            except OSError:
                pass
    tmp = sorted(os.listdir("/tmp"))
    return mounts, procs, tmp


def test_nothing_is_left_behind():
    before = _host_state()
    proc = run_exec(
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('parent done')\n",
        "--policy", ABLATION)
    assert proc.returncode == 0, proc.stderr
    mounts, procs, tmp = _host_state()
    assert mounts == before[0]
    assert procs == set(), f"left-over sandbox processes: {procs}"
    assert [t for t in tmp if t.startswith("pycell")] == [t for t in before[2] if t.startswith("pycell")]


def make_mount_points(root):
    """A fake root with the mount points pycell needs and nothing else."""
    for d in ["workspace", "tmp", "dev", "proc", ".pycell", "etc"]:
        (root / d).mkdir()


@pytest.fixture
def open_tmp():
    # The sandbox's unprivileged uid must be able to reach the rootfs, so the
    # fake roots live in a world-traversable directory (pytest's is 0700).
    import shutil
    import tempfile
    base = REPO / "build" / "test-tmp"
    base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(dir=base))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def test_child_side_failure_is_reported_with_step_and_status_125(open_tmp):
    # A root with the mount points but no C library: exec of pycell-init fails
    # inside the sandbox, after every namespace and mount step succeeded.
    make_mount_points(open_tmp)
    proc = subprocess.run([PYCELL, "exec", "--rootfs", str(open_tmp), "-c", "pass"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125
    assert "INTERNAL_ERROR" in proc.stderr
    assert "exec pycell-init" in proc.stderr and "No such file or directory" in proc.stderr


def _run_in_userns_without_net_namespaces(argv):
    """argv as uid 65534 inside a user namespace (0 and 65534 mapped to
    themselves) whose user.max_net_namespaces is 0: a limit on this namespace
    only, checked again for every namespace nested in it."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r), os.close(go_w), os.close(err_r)
            if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
                os._exit(90)
            os.write(ready_w, b"u")
            os.read(go_r, 1)
            with open("/proc/sys/user/max_net_namespaces", "w") as f:
                f.write("0")
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            os.dup2(err_w, 2)
            os.execve(argv[0], argv, {"PATH": "/usr/bin:/bin", "PYCELL_CGROUP_VERSION": "0"})
        finally:
            os._exit(91)
    os.close(ready_w), os.close(go_r), os.close(err_w)
    try:
        assert os.read(ready_r, 1) == b"u"
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{pid}/{name}").write_text("0 0 1\n65534 65534 1\n")
        os.write(go_w, b"g")
        err = b""
        while chunk := os.read(err_r, 65536):
            err += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(ready_r), os.close(go_w), os.close(err_r)
    return os.waitstatus_to_exitcode(status), err.decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to map uid 65534 into a user namespace")
def test_a_namespace_the_child_cannot_make_is_reported_with_its_step():
    # clone3 makes only the user and pid namespaces; the child unshares mount,
    # net, ipc and uts itself while the supervisor writes its id maps. When the
    # kernel refuses one, the child's own step and errno come back (sync 2),
    # not a failed map write to a process that already exited.
    code, err = _run_in_userns_without_net_namespaces([PYCELL, "exec", "--policy", ABLATION, "-c", "print(1)"])
    assert code == 125, err
    assert "INTERNAL_ERROR: unshare mount, net, ipc and uts namespaces" in err, err
    assert "No space left on device" in err, err


def test_unreachable_rootfs_is_reported_from_the_child(tmp_path):
    # pytest's tmp dirs are 0700 root: the sandbox's unprivileged uid cannot
    # reach them, and the child says which step failed and why.
    make_mount_points(tmp_path)
    proc = subprocess.run([PYCELL, "exec", "--rootfs", str(tmp_path), "-c", "pass"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125
    assert "rootfs: bind" in proc.stderr and "Permission denied" in proc.stderr


def test_missing_rootfs_mount_point_is_explained(tmp_path):
    proc = subprocess.run([PYCELL, "exec", "--rootfs", str(tmp_path), "-c", "pass"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125
    assert "has no directory '/workspace'" in proc.stderr


def _descendants(pid):
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                for k in map(int, kids):
                    if k not in out:
                        out.add(k)
                        todo.append(k)
        except OSError:
            pass
    return out


def test_sandbox_dies_with_a_killed_pycell():
    import signal
    import time
    proc = subprocess.Popen([PYCELL, "exec", "--policy", ABLATION, "-c",
                             "import time\nprint('up', flush=True)\ntime.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "up\n"
        kids = _descendants(proc.pid)
        assert len(kids) >= 2  # pycell-init and the job
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(k) for k in kids):
            time.sleep(0.05)
        assert not [k for k in kids if alive(k)], "sandbox outlived its supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
