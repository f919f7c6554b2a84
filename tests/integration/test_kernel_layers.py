"""Issue 5, the other kernel layers, each proven from inside the sandbox by
the static probe in ablation mode (no Python layer): capabilities and
no_new_privs, Landlock, loopback-only network, /proc /sys /dev hygiene,
RLIMIT_CORE, and the descriptors that reach the job."""
import ctypes
import socket
import subprocess

import pytest

from conftest import MUST_WORK, PYCELL, REPO, run_exec

ABLATION = str(REPO / "tests" / "policies" / "ablation.json")


def probe(*args, timeout=60):
    proc = subprocess.run([PYCELL, "exec", "--policy", ABLATION, "--probe", "--", *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc
    return proc.stdout


def test_capabilities_empty_no_new_privs_and_seccomp_filter():
    status = dict(line.split(":\t") for line in probe("status").splitlines())
    for s in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert status[s] == "0000000000000000", s
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # SECCOMP_MODE_FILTER
    assert int(status["Seccomp_filters"]) >= 1


def test_setuid_0_then_host_shadow_is_out_of_reach():
    out = probe("try", "setuid0").split()
    assert out == ["setuid0", "EPERM"]
    assert probe("read", "/etc/shadow").strip() == "ENOENT"  # the rootfs ships none, the host's is not there


@pytest.mark.parametrize("path,expected", [
    ("/workspace/f", "OK"),        # the workdir: read-write
    ("/tmp/f", "OK"),              # /tmp: read-write
    ("/dev/null", "OK"),           # device nodes: writable
    ("/usr/f", "EROFS"),           # rootfs: read-only mount
    ("/.pycell/f", "EROFS"),       # runtime files: read-only mount
    ("/proc/self/attr/current", "EACCES"),  # writable by the kernel's rules, fenced by Landlock
    ("/proc/sys/kernel/hostname", "ENOENT"),  # proc subset=pid: no /proc/sys
])
def test_filesystem_writes(path, expected):
    assert probe("write", path).strip() == expected


def landlock_abi():
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(444, None, 0, 1)


def test_landlock_is_enforced_where_the_kernel_has_it():
    if landlock_abi() < 1:
        if MUST_WORK:
            pytest.fail("the kernel has no Landlock")
        pytest.skip("the kernel has no Landlock (boot with lsm=...,landlock)")
    # /proc/self/attr is a writable proc file no mount flag protects; only
    # Landlock refuses it (EACCES).
    assert probe("write", "/proc/self/attr/current").strip() == "EACCES"


@pytest.mark.parametrize("path", ["/proc/kcore", "/proc/kallsyms", "/proc/sysrq-trigger", "/proc/sys/kernel/hostname",
                                  "/sys/kernel/notes", "/etc/shadow"])
def test_host_kernel_files_are_absent(path):
    assert probe("read", path).strip() == "ENOENT"


def test_proc_shows_only_the_jobs_processes_and_dev_is_exact():
    proc = run_exec("import os, stat\n"
                    "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
                    "print(sorted(d for d in os.listdir('/dev') if stat.S_ISCHR(os.lstat('/dev/' + d).st_mode)))\n"
                    "print(os.path.exists('/sys'))", "--policy", ABLATION)
    assert proc.returncode == 0, proc.stderr
    pids, devs, sys_ = proc.stdout.splitlines()
    assert eval(pids) == ["1", "2"]  # pycell-init and the job
    assert eval(devs) == ["full", "null", "random", "urandom", "zero"]
    assert sys_ == "False"


def test_host_loopback_service_is_unreachable_own_loopback_works():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        assert probe("connect", "127.0.0.1", str(port)).strip() == "ECONNREFUSED"
    finally:
        srv.close()
    assert probe("serve-self").strip() == "OK"


def test_only_loopback_interface():
    proc = run_exec("print([l.split(':')[0].strip() for l in open('/proc/self/net/dev').read().splitlines()[2:]])",
                    "--policy", ABLATION)
    assert proc.returncode == 0, proc.stderr
    assert eval(proc.stdout) == ["lo"]


def test_core_dumps_are_off():
    assert probe("rlimit-core").split() == ["0", "0"]


def test_only_the_fixed_descriptors_reach_the_job():
    fds = dict(line.split(" ", 1) for line in probe("fds").splitlines())
    assert sorted(fds, key=int) == ["0", "1", "2", "3", "4"]  # 5 (sync) is closed on exec
    assert fds["0"].startswith("/memfd:pycell-input")
    assert fds["3"].startswith("/memfd:pycell-bootstrap")
    for n in ("1", "2", "4"):
        assert fds[n].startswith("pipe:")


def test_reopening_proc_fds_reaches_nothing_else():
    # open("/proc/self/fd/N") for N up to 64: only the fixed ones exist.
    lines = probe("open-fds", "64").splitlines()
    assert {int(line.split()[0]) for line in lines} <= {0, 1, 2, 3, 4}


def test_result_states_the_layers_applied():
    from conftest import run_job
    res = run_job({"code": "print(1)"}, "--policy", ABLATION)
    assert res.json["status"] == "ok", res
    layers = res.json["layers"]
    assert layers["seccomp"]["list"].endswith("policy/seccomp/default.json")
    assert 100 < layers["seccomp"]["bpf_instructions"] < 4096
    assert layers["landlock"]["applied"] is (landlock_abi() >= 1)
    assert layers["no_new_privs"] is True
    assert layers["python_checks"] is False
