/* pycell-probe: a tiny static program run as the job in ablation mode
 * (`pycell exec --probe -- ARGS`), so the kernel layers are tested without
 * the Python layer (crun's tests/init.c, bubblewrap's try-syscall).
 *
 *   try NAME...        attempt each named call, print "NAME RESULT" where
 *                      RESULT is OK or the errno name (EFAULT/EBADF: the
 *                      call reached the kernel, the filter let it through)
 *   list               the names `try` knows
 *   status             Cap*, NoNewPrivs, Seccomp lines of /proc/self/status
 *   fds                every open descriptor and where it points
 *   open-fds MAX       try open("/proc/self/fd/N") for N < MAX
 *   connect HOST PORT  TCP connect; OK or errno name
 *   write PATH / read PATH / rlimit-core / serve-self */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif
#define BAD ((void *)8) /* an unmapped pointer: EFAULT from the kernel */

static long do_fork(void)
{
	long r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);

	if (r == 0)
		_exit(0);
	if (r > 0) {
		waitpid((pid_t)r, NULL, 0);
		return 0;
	}
	return r;
}

static long x32_getpid(void)
{
	return syscall(0x40000000 | SYS_getpid);
}

static long i386_getpid(void)
{
	long r;
	/* int 0x80 enters the i386 ABI (AUDIT_ARCH_I386) even from 64-bit code. */
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

static long ioctl_hi(void)
{
	/* cmd with garbage in the high 32 bits: the kernel ignores them. */
	return syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI | (1UL << 32), BAD);
}

struct attempt {
	const char *name;
	long (*fn)(void);
};

#define T(n, expr)                                                                                                     \
	static long t_##n(void)                                                                                        \
	{                                                                                                              \
		return (long)(expr);                                                                                   \
	}
T(read_badfd, syscall(SYS_read, -1, BAD, 1))
T(getpid, syscall(SYS_getpid))
T(unshare_user, unshare(CLONE_NEWUSER))
T(unshare_net, unshare(CLONE_NEWNET))
T(clone_newuser, syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0))
T(clone_newns, syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0))
T(clone3, syscall(SYS_clone3, BAD, 88))
T(setns, setns(-1, 0))
T(mount, mount("none", "/", NULL, MS_REMOUNT, NULL))
T(umount2, umount2("/", MNT_DETACH))
T(pivot_root, syscall(SYS_pivot_root, BAD, BAD))
T(fsopen, syscall(SYS_fsopen, BAD, 0))
T(open_tree, syscall(SYS_open_tree, -1, BAD, 0))
T(move_mount, syscall(SYS_move_mount, -1, BAD, -1, BAD, 0))
T(mount_setattr, syscall(SYS_mount_setattr, -1, BAD, 0, BAD, 0))
T(ptrace_traceme, syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0))
T(ptrace_attach1, syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0))
T(process_vm_readv, syscall(SYS_process_vm_readv, 1, BAD, 1, BAD, 1, 0))
T(process_vm_writev, syscall(SYS_process_vm_writev, 1, BAD, 1, BAD, 1, 0))
T(kcmp, syscall(SYS_kcmp, 1, 1, 0, 0, 0))
T(pidfd_getfd, syscall(SYS_pidfd_getfd, -1, 0, 0))
T(bpf, syscall(SYS_bpf, 0, BAD, 8))
T(perf_event_open, syscall(SYS_perf_event_open, BAD, 0, -1, -1, 0))
T(userfaultfd, syscall(SYS_userfaultfd, 0))
T(io_uring_setup, syscall(SYS_io_uring_setup, 1, BAD))
T(keyctl, syscall(SYS_keyctl, 0, 0, 0, 0, 0))
T(add_key, syscall(SYS_add_key, BAD, BAD, BAD, 0, 0))
T(request_key, syscall(SYS_request_key, BAD, BAD, BAD, 0))
T(init_module, syscall(SYS_init_module, BAD, 0, BAD))
T(finit_module, syscall(SYS_finit_module, -1, BAD, 0))
T(delete_module, syscall(SYS_delete_module, BAD, 0))
T(kexec_load, syscall(SYS_kexec_load, 0, 0, BAD, 0))
T(reboot, syscall(SYS_reboot, 0, 0, 0, BAD))
T(swapon, syscall(SYS_swapon, BAD, 0))
T(acct, syscall(SYS_acct, BAD))
T(quotactl, syscall(SYS_quotactl, 0, BAD, 0, BAD))
T(syslog, syscall(SYS_syslog, 3, BAD, 16))
T(settimeofday, syscall(SYS_settimeofday, BAD, BAD))
T(clock_settime, syscall(SYS_clock_settime, 0, BAD))
T(open_by_handle_at, syscall(SYS_open_by_handle_at, -1, BAD, 0))
T(splice, syscall(SYS_splice, -1, 0, -1, 0, 1, 0))
T(vmsplice, syscall(SYS_vmsplice, -1, BAD, 1, 0))
T(tee, syscall(SYS_tee, -1, -1, 1, 0))
T(personality_query, personality(0xffffffff))
T(personality_linux, personality(PER_LINUX))
T(personality_norandom, personality(ADDR_NO_RANDOMIZE))
T(ioctl_tiocsti, syscall(SYS_ioctl, 0, TIOCSTI, BAD))
T(ioctl_tiocsti_hi, ioctl_hi())
T(ioctl_tioclinux, syscall(SYS_ioctl, 0, TIOCLINUX, BAD))
T(ioctl_tcgets, syscall(SYS_ioctl, -1, TCGETS, BAD))
T(ioctl_fionread, syscall(SYS_ioctl, -1, FIONREAD, BAD))
T(socket_unix, socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0))
T(socket_inet, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0))
T(socket_inet6, socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0))
T(socket_netlink, socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0))
T(socket_packet, socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0))
T(socket_alg, socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0))
T(socket_vsock, socket(40 /* AF_VSOCK */, SOCK_STREAM | SOCK_CLOEXEC, 0))
T(chroot, chroot("/"))
T(setuid0, setuid(0))
T(fork, do_fork())
T(x32_getpid, x32_getpid())
T(i386_getpid, i386_getpid())
T(mknod, mknod("/tmp/probe-node", 0020666, 0x0103))
T(name_to_handle_at, syscall(SYS_name_to_handle_at, -1, BAD, BAD, BAD, 0))

#define A(n) { #n, t_##n }
static const struct attempt attempts[] = {
	A(read_badfd), A(getpid), A(unshare_user), A(unshare_net), A(clone_newuser), A(clone_newns), A(clone3),
	A(setns), A(mount), A(umount2), A(pivot_root), A(fsopen), A(open_tree), A(move_mount), A(mount_setattr),
	A(ptrace_traceme), A(ptrace_attach1), A(process_vm_readv), A(process_vm_writev), A(kcmp), A(pidfd_getfd),
	A(bpf), A(perf_event_open), A(userfaultfd), A(io_uring_setup), A(keyctl), A(add_key), A(request_key),
	A(init_module), A(finit_module), A(delete_module), A(kexec_load), A(reboot), A(swapon), A(acct), A(quotactl),
	A(syslog), A(settimeofday), A(clock_settime), A(open_by_handle_at), A(splice), A(vmsplice), A(tee),
	A(personality_query), A(personality_linux), A(personality_norandom), A(ioctl_tiocsti), A(ioctl_tiocsti_hi),
	A(ioctl_tioclinux), A(ioctl_tcgets), A(ioctl_fionread), A(socket_unix), A(socket_inet), A(socket_inet6),
	A(socket_netlink), A(socket_packet), A(socket_alg), A(socket_vsock), A(chroot), A(setuid0), A(fork),
	A(x32_getpid), A(i386_getpid), A(mknod), A(name_to_handle_at),
};

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

static int cmd_try(int argc, char **argv)
{
	int bad = 0;

	for (int i = 0; i < argc; i++) {
		size_t j;
		long r;

		for (j = 0; j < sizeof(attempts) / sizeof(attempts[0]) && strcmp(attempts[j].name, argv[i]); j++)
			;
		if (j == sizeof(attempts) / sizeof(attempts[0])) {
			printf("%s UNKNOWN\n", argv[i]);
			bad = 1;
			continue;
		}
		errno = 0;
		r = attempts[j].fn();
		printf("%s %s\n", argv[i], r < 0 ? errname(errno) : "OK");
		fflush(stdout);
	}
	return bad ? 2 : 0;
}

static int cmd_status(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return perror("status"), 1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "Seccomp", 7))
			fputs(line, stdout);
	}
	fclose(f);
	return 0;
}

static int cmd_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return perror("fds"), 1;
	while ((e = readdir(d))) {
		char p[64], t[256];
		ssize_t n;

		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		n = readlink(p, t, sizeof(t) - 1);
		t[n < 0 ? 0 : n] = '\0';
		printf("%s %s\n", e->d_name, t);
	}
	closedir(d);
	return 0;
}

static int cmd_open_fds(int max)
{
	for (int i = 0; i < max; i++) {
		char p[64];
		int fd;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", i);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			printf("%d OK\n", i);
			close(fd);
		} else if (errno != ENOENT) {
			printf("%d %s\n", i, errname(errno));
		}
	}
	return 0;
}

static int cmd_connect(const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return printf("%s\n", errname(errno)), 0;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		printf("%s\n", errname(errno));
	else
		printf("OK\n");
	close(s);
	return 0;
}

/* A server and a client on the job's own loopback: reachable. */
static int cmd_serve_self(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c;

	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &l) < 0)
		return printf("setup %s\n", errname(errno)), 0;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	printf("%s\n", connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 ? "OK" : errname(errno));
	return 0;
}

static int cmd_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, "x\n", 2) != 2)
		printf("%s\n", errname(errno));
	else
		printf("OK\n");
	return 0;
}

static int cmd_read(const char *path)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, buf, sizeof(buf)) < 0)
		printf("%s\n", errname(errno));
	else
		printf("OK\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct rlimit rl;

	if (argc < 2) {
		fprintf(stderr, "usage: probe try NAME...|list|status|fds|open-fds MAX|connect HOST PORT|"
				"write PATH|read PATH|rlimit-core|serve-self\n");
		return 2;
	}
	if (!strcmp(argv[1], "try"))
		return cmd_try(argc - 2, argv + 2);
	if (!strcmp(argv[1], "list")) {
		for (size_t j = 0; j < sizeof(attempts) / sizeof(attempts[0]); j++)
			puts(attempts[j].name);
		return 0;
	}
	if (!strcmp(argv[1], "status"))
		return cmd_status();
	if (!strcmp(argv[1], "fds"))
		return cmd_fds();
	if (!strcmp(argv[1], "open-fds") && argc == 3)
		return cmd_open_fds(atoi(argv[2]));
	if (!strcmp(argv[1], "connect") && argc == 4)
		return cmd_connect(argv[2], atoi(argv[3]));
	if (!strcmp(argv[1], "serve-self"))
		return cmd_serve_self();
	if (!strcmp(argv[1], "write") && argc == 3)
		return cmd_write(argv[2]);
	if (!strcmp(argv[1], "read") && argc == 3)
		return cmd_read(argv[2]);
	if (!strcmp(argv[1], "rlimit-core")) {
		getrlimit(RLIMIT_CORE, &rl);
		printf("%llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
		return 0;
	}
	fprintf(stderr, "probe: unknown command '%s'\n", argv[1]);
	return 2;
}
