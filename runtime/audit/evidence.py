# pycell audit: the evidence job (docs/audit.md). Runs through pc_run_job
# under the audited policy's kernel layers with python.checks switched off
# for this job only (the shim's allowlist would refuse `os`); the C audit
# hook and the exec filter stay on, as for every job. It only observes and
# attempts refused operations; the supervisor judges, so this file holds no
# expectations.
import errno, os, resource, socket, subprocess


def attempt(fn):
    try:
        fn()
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return "!" + errno.errorcode.get(e.errno, str(e.errno))


def sock(family, kind):
    s = socket.socket(family, kind)
    s.close()


def connect_out():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(("192.0.2.1", 80))  # TEST-NET-1 (RFC 5737): never a real host
    finally:
        s.close()


def spawn():
    subprocess.run(["/usr/bin/true"], close_fds=True, check=False)


def fds():
    # fd -> what it is, inode numbers dropped so the report stays stable.
    # listdir's own fd is closed by the time readlink runs: it drops out.
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd).split("[")[0].split(" (")[0]
        except OSError:
            pass
    return out


def write_root():
    with open("/pycell-audit-write", "w") as f:
        f.write("x")


ev = {
    "status": read("/proc/self/status"),
    "ns": {n: os.readlink("/proc/self/ns/" + n) for n in
           ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup")},
    "uid_map": read("/proc/self/uid_map"),
    "gid_map": read("/proc/self/gid_map"),
    "cgroup": read("/proc/self/cgroup"),
    "mountinfo": read("/proc/self/mountinfo"),
    "net_dev": read("/proc/self/net/dev"),
    "route": read("/proc/self/net/route"),
    "ipv6_route": read("/proc/self/net/ipv6_route"),
    "fds": fds(),
    "rlimits": {name: list(resource.getrlimit(getattr(resource, "RLIMIT_" + name.upper())))
                for name in ("cpu", "fsize", "nofile", "core", "stack", "nproc")},
    "uid": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
    "root_statvfs_ro": bool(os.statvfs("/").f_flag & os.ST_RDONLY),
    "try": {
        "write_rootfs": attempt(write_root),
        "connect_out": attempt(connect_out),
        "exec": attempt(spawn),
        "socket_netlink": attempt(lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW)),
        "socket_packet": attempt(lambda: sock(socket.AF_PACKET, socket.SOCK_RAW)),
        "socket_vsock": attempt(lambda: sock(socket.AF_VSOCK, socket.SOCK_STREAM)),
        "setuid0": attempt(lambda: os.setuid(0)),
        "chroot": attempt(lambda: os.chroot("/")),
        "sethostname": attempt(lambda: socket.sethostname("pycell-audit")),
    },
}
result = ev
