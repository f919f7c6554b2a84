"""Issue 11, warm mode on a pure cgroup v2 host (the qemu lane: make
test-cgroup2). Each warm job is cloned by its zygote straight into a cgroup
of its own (clone3 CLONE_INTO_CGROUP, the group's fd handed over by
SCM_RIGHTS), in a tree delegated to the zygote's uid; the job's limits are
written before it runs, the results carry the v2 evidence as cold ones do,
and no group outlives its job or the server. The Python layer is off
(ablation policy): only the kernel layers are measured."""
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import MUST_WORK, PYCELL
from resctl import ABLATION, CG_ROOT, IS_ROOT, Isolated, cgroup_version
from test_warm import WarmServer

MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(cgroup_version() != 2 or (not IS_ROOT and not MUST_WORK),
                                reason="needs root on a pure cgroup v2 host (make test-cgroup2)")


def trees(iso):
    d = CG_ROOT / iso.parent
    return sorted(p for p in d.iterdir() if p.is_dir() and p.name.startswith("zygote-")) if d.is_dir() else []


def job_groups(tree):
    return sorted(p for p in tree.iterdir() if p.is_dir() and p.name.startswith("job-"))


def host_uid(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(pid)


def ns_pid(pid):
    """The pid in the innermost pid namespace (NSpid's last field)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(pid)


def procs(group):
    return [int(p) for p in (group / "cgroup.procs").read_text().split()]


def wait_for(pred, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def start(tmp_path_factory):
    iso = Isolated(tmp_path_factory.mktemp("warmcg2"))
    s = WarmServer("--policy", ABLATION, env=iso.env)
    s.iso = iso  # its socket's path appears once it listens (serve_listen.c)
    return s


def stop(s):
    try:
        s.stop()
        assert trees(s.iso) == [], "zygote cgroup trees left behind"
        assert s.iso.job_groups() == [], "job cgroups left behind"
    finally:
        s.iso.cleanup()


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    s = start(tmp_path_factory)
    yield s
    stop(s)


def test_zygote_runs_in_a_leaf_of_its_own_delegated_tree(warm):
    (zpid,) = warm.health()["zygotes"]
    (tree,) = trees(warm.iso)
    rel = "/" + str(tree.relative_to(CG_ROOT))
    assert open(f"/proc/{zpid}/cgroup").read() == f"0::{rel}/zygote\n"
    uid = host_uid(zpid)
    assert uid != 0
    # delegated: the tree's cgroup.procs only (the common ancestor a clone
    # into a sibling group must be allowed to write); the rest stays root's
    assert (tree / "cgroup.procs").stat().st_uid == uid
    for f in ("", "cgroup.subtree_control", "cgroup.threads", "zygote", "zygote/cgroup.procs"):
        assert (tree / f).stat().st_uid == 0, f
    assert set((tree / "cgroup.subtree_control").read_text().split()) >= {"memory", "pids", "cpu"}


def test_a_warm_job_sees_its_own_namespace_root(warm):
    status, doc = warm.run({"code": "print(open('/proc/self/cgroup').read(), end='')\n"
                                    "result = open('/proc/1/cgroup').read()"})
    assert status == 200 and doc["status"] == "ok", doc
    # its leader lives beside its group, in the zygote's leaf: seen relative
    # to the job's root, nothing of the host's path
    assert doc["stdout"] == "0::/\n" and doc["result"] == "0::/../zygote\n", doc["result"]
    assert doc["metrics"]["warm"] is True and doc["metrics"]["cgroup_version"] == 2


def test_the_job_is_born_in_its_own_group_with_its_limits(warm):
    job = {"code": "import time\ntime.sleep(6)\nresult = 1", "limits": {"memory_mb": 96, "pids": 24}}
    out = {}
    t = threading.Thread(target=lambda: out.update(doc=warm.run(job)[1]))
    t.start()
    try:
        (tree,) = trees(warm.iso)

        def running():
            for g in job_groups(tree):
                try:
                    if (g / "memory.max").read_text().strip() == str(96 * MiB):
                        return g
                except OSError:
                    pass
            return None

        g = wait_for(running)
        assert g, [p.name for p in job_groups(tree)]
        # the job process (pid 2 of the job's namespaces) alone: born here;
        # its leader (pid 1) shares the zygote's memory and stays in the
        # zygote's leaf, so no OOM kill in this group can reach the zygote
        pids = procs(g)
        assert [ns_pid(p) for p in pids] == [2], pids
        rel = "/" + str(g.relative_to(CG_ROOT))
        assert open(f"/proc/{pids[0]}/cgroup").read() == f"0::{rel}\n"
        leader = int(open(f"/proc/{pids[0]}/status").read().split("\nPPid:")[1].split()[0])
        assert ns_pid(leader) == 1
        assert open(f"/proc/{leader}/cgroup").read() == f"0::/{tree.relative_to(CG_ROOT)}/zygote\n"
        assert (g / "pids.max").read_text().strip() == "24"
        cpu_max = (g / "cpu.max").read_text().split()
        if (g / "memory.swap.max").exists():
            assert (g / "memory.swap.max").read_text().strip() == "0"
        assert (g / "memory.oom.group").read_text().strip() == "1"
        # the limits are root's; only cgroup.procs is the zygote uid's
        uid = host_uid(pids[0])
        assert (g / "cgroup.procs").stat().st_uid == uid
        for f in ("", "memory.max", "memory.swap.max", "pids.max", "cpu.max", "cgroup.subtree_control",
                  "cgroup.kill", "memory.oom.group"):
            if (g / f).exists():
                assert (g / f).stat().st_uid == 0, f
        # ... so that uid cannot raise them, nor make groups, even with the
        # cgroupfs in reach (which its jobs do not have: the next test)
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            res = []
            for attempt in (lambda: open(g / "memory.max", "w").write("max"),
                            lambda: open(g / "pids.max", "w").write("max"),
                            lambda: open(tree / "cgroup.subtree_control", "w").write("-memory"),
                            lambda: os.mkdir(tree / "mine")):
                try:
                    attempt()
                    res.append("done")
                except OSError as e:
                    res.append(e.errno)
            os.write(w, json.dumps(res).encode())
            os._exit(0)
        os.close(w)
        res = json.loads(os.read(r, 4096))
        os.waitpid(child, 0)
        os.close(r)
        assert res == [13, 13, 13, 13], res  # EACCES
        assert (g / "memory.max").read_text().strip() == str(96 * MiB)
    finally:
        t.join()
    assert out["doc"]["status"] == "ok" and out["doc"]["result"] == 1, out["doc"]
    assert cpu_max == [str(out["doc"]["limits"]["cpu_percent"] * 1000), "100000"], cpu_max
    # removed after its job, by its handler
    assert wait_for(lambda: not g.exists()), g


ATTACK = r"""
import os
out = {'sys': os.path.exists('/sys'),
       'fstypes': sorted({l.split(' - ')[1].split()[0] for l in open('/proc/self/mountinfo')}),
       'self': open('/proc/self/cgroup').read(), 'pid1': open('/proc/1/cgroup').read(), 'paths': {}, 'fds': {}}
for p in ('/sys/fs/cgroup/memory.max', '/proc/1/root/sys/fs/cgroup/memory.max',
          '/proc/self/root/sys/fs/cgroup/cgroup.procs', '/proc/1/cwd/memory.max'):
    try:
        open(p, 'w').write('max'); out['paths'][p] = 'written'
    except OSError as e:
        out['paths'][p] = e.errno
for pid in ('self', '1'):
    try:
        out['fds'][pid] = [os.readlink(f'/proc/{pid}/fd/{fd}') for fd in os.listdir(f'/proc/{pid}/fd')
                           if os.path.lexists(f'/proc/{pid}/fd/{fd}')]
    except OSError as e:
        out['fds'][pid] = e.errno
result = out
"""


def test_the_job_cannot_reach_its_limits_or_the_zygote_tree(warm):
    status, doc = warm.run({"code": ATTACK, "limits": {"memory_mb": 64}})
    assert doc["status"] == "ok", doc
    r = doc["result"]
    assert r["sys"] is False and not any("cgroup" in t for t in r["fstypes"]), r
    assert r["self"] == "0::/\n" and r["pid1"] == "0::/../zygote\n"
    assert all(v != "written" for v in r["paths"].values()), r["paths"]
    assert not any("cgroup" in str(x) for x in r["fds"]["self"]), r["fds"]
    assert r["fds"]["1"] == 13, r["fds"]  # the leader is not dumpable: EACCES
    # nothing changed outside: the zygote runs on, in its leaf
    (zpid,) = warm.health()["zygotes"]
    assert open(f"/proc/{zpid}/cgroup").read().endswith("/zygote\n")


@pytest.mark.parametrize("code,limits,expected,evidence", [
    ("x = bytearray(600 * 1024 * 1024)\nprint(len(x))", {"memory_mb": 128}, "MEMORY_LIMIT",
     "memory.events oom_kill"),
    ("import os\nwhile True:\n    os.fork()", {"pids": 32, "wall_ms": 20000}, "PIDS_LIMIT", "pids.events max"),
    ("while True:\n    pass", {"cpu_ms": 400, "wall_ms": 20000}, "CPU_LIMIT", "cpu.stat usage_usec"),
])
def test_limits_give_the_cold_codes_and_evidence(warm, code, limits, expected, evidence):
    zygotes = warm.health()["zygotes"]
    status, doc = warm.run({"code": code, "limits": limits})
    assert status == 200 and doc["status"] == "error", doc
    assert doc["error"]["code"] == expected and doc["error"]["details"]["evidence"] == evidence, doc["error"]
    assert doc["metrics"]["warm"] is True and doc["metrics"]["cgroup_version"] == 2
    # the zygote survived and serves the next job
    assert warm.run({"code": "result = 1"})[1]["result"] == 1
    h = warm.health()
    assert h["zygotes"] == zygotes and h["replaced"] == 0, h


def test_no_job_group_outlives_its_job(warm):
    for i in range(4):
        assert warm.run({"code": f"result = {i}"})[1]["result"] == i
    (tree,) = trees(warm.iso)
    # idle: the zygote's leaf and the one group its spare was born in
    assert wait_for(lambda: len(job_groups(tree)) == 1), job_groups(tree)
    (spare,) = job_groups(tree)
    assert (spare / "memory.max").read_text().strip() == "max"  # no job's limits yet
    assert [ns_pid(p) for p in procs(spare)] == [2]  # the spare's job process


def test_nothing_is_left_after_the_server_stops(tmp_path_factory):
    s = start(tmp_path_factory)
    try:
        assert s.run({"code": "result = 7"})[1]["result"] == 7
        (tree,) = trees(s.iso)
        assert job_groups(tree)
    finally:
        stop(s)


CLONE_NEWCGROUP_INTO = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct clone_args a = { .flags = CLONE_NEWCGROUP | CLONE_INTO_CGROUP, .exit_signal = SIGCHLD };
	char buf[512];
	pid_t p;
	int fd, n;

	a.cgroup = (unsigned)open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	p = (pid_t)syscall(SYS_clone3, &a, sizeof(a));
	if (p == 0) {
		fd = open("/proc/self/cgroup", O_RDONLY);
		n = (int)read(fd, buf, sizeof(buf));
		_exit(n > 0 && write(1, buf, (size_t)n) == n ? 0 : 1);
	}
	return p < 0 || waitpid(p, NULL, 0) < 0;
}
"""


def test_clone3_into_a_cgroup_roots_its_new_cgroup_namespace_at_its_own_group(tmp_path):
    """What the kernel does with clone3(CLONE_NEWCGROUP | CLONE_INTO_CGROUP)
    (docs/warm.md): copy_namespaces() runs before the child changes group,
    but cgroup_post_fork() re-roots the new namespace at the child's group."""
    iso = Isolated(tmp_path)
    group = CG_ROOT / iso.parent / "probe"
    src, exe = tmp_path / "p.c", tmp_path / "p"
    src.write_text(CLONE_NEWCGROUP_INTO)
    subprocess.run(["cc", "-o", str(exe), str(src)], check=True)
    group.mkdir(parents=True)
    try:
        out = subprocess.run([str(exe), str(group)], capture_output=True, text=True, check=True).stdout
    finally:
        group.rmdir()
        iso.cleanup()
    # rooted at its own group, not at ours (which would show the path)
    assert out == "0::/\n", out


def test_gc_removes_the_tree_of_a_killed_server(tmp_path_factory):
    s = start(tmp_path_factory)
    try:
        assert s.run({"code": "result = 1"})[1]["result"] == 1
        (tree,) = trees(s.iso)
        s.proc.kill()
        s.proc.wait()
        os.unlink(s.sock)  # a killed server removes nothing: what `pycell gc` is for
        assert tree.is_dir() and job_groups(tree)
        # its zygote and spare die with it (parent-death signal, pid namespace)
        assert wait_for(lambda: all(not procs(g) for g in [tree / "zygote", *job_groups(tree)]))
        r = subprocess.run([PYCELL, "gc"], env=s.iso.env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        assert not tree.exists()
    finally:
        stop(s)
