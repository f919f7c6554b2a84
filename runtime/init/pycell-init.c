/* pycell-init: pid 1 inside the sandbox.
 *
 * It is exec'd by the sandbox child as the last setup step, with the job's
 * descriptors already in place (see sync.h): the sync socket on fd 5 and
 * the exec filter's BPF on fd 6. It forks the job process (pid 2), tells the
 * supervisor whether the job started, reaps every orphan that gets
 * re-parented to it, and exits as soon as the job process ends: pid 1
 * leaving tears down the whole pid namespace, so nothing the job started can
 * outlive it.
 *
 *   pycell-init --embed SCRIPT   the job process hosts Python itself
 *                                (embed.c): exec filter, C audit hook,
 *                                isolated interpreter, then SCRIPT
 *   pycell-init PROGRAM [ARG...] the job process execs PROGRAM (the test
 *                                probe). The exec filter is not loaded:
 *                                it would refuse that very exec, and a
 *                                filter cannot be installed across one.
 *
 * pid 1 itself never initialises Python; it is linked with libpython only
 * because the job process is its fork. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed.h"
#include "sync.h"
#include "util.h"
#include "zygote.h"

/* BPF_MAXINSNS (linux/bpf_common.h): the kernel refuses longer programs. */
static struct sock_filter filter_insns[BPF_MAXINSNS];

/* When the job process was forked (now_ns): the end of the sandbox's setup. */
static int64_t forked_ns;

static void send_msg(int type, int errnum, int status, const char *msg)
{
	struct pc_sync_msg m = { .type = type, .errnum = errnum, .status = status, .forked_ns = forked_ns };

	if (msg)
		snprintf(m.msg, sizeof(m.msg), "%s", msg);
	/* SEQPACKET: one record per send, never split. */
	while (send(PC_FD_SYNC, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static void __attribute__((noreturn)) fail(const char *step, int errnum)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "pycell-init: %s", step);
	send_msg(PC_SYNC_ERROR, errnum, 0, buf);
	_exit(125);
}

/* Reads the exec filter into memory and closes its descriptor, so the job
 * never holds it. Returns false when the supervisor handed none over. */
static bool read_filter(struct sock_fprog *prog)
{
	size_t got = 0;
	ssize_t n;

	if (fcntl(PC_FD_EXEC_FILTER, F_GETFD) < 0)
		return false;
	for (;;) {
		n = read(PC_FD_EXEC_FILTER, (char *)filter_insns + got, sizeof(filter_insns) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("read the exec filter (fd 6)", errno);
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == sizeof(filter_insns))
			fail("the exec filter on fd 6 is longer than BPF_MAXINSNS", E2BIG);
	}
	close(PC_FD_EXEC_FILTER);
	if (got == 0 || got % sizeof(struct sock_filter))
		fail("the exec filter on fd 6 is not a BPF program", EINVAL);
	prog->len = (unsigned short)(got / sizeof(struct sock_filter));
	prog->filter = filter_insns;
	return true;
}

static void __attribute__((noreturn)) exec_job(char **argv, int status_fd)
{
	execve(argv[0], argv, environ);
	pc_init_report(status_fd, errno, "pycell-init: exec '%s'", argv[0]);
	_exit(127);
}

/* Returns the job's pid once it started (exec'd, or its interpreter came
 * up); reports and exits otherwise. */
static pid_t spawn_job(char **argv, const char *script, const struct sock_fprog *filter)
{
	struct pc_init_status st = { 0 };
	sigset_t none;
	int pfd[2];
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		fail("pipe", errno);
	forked_ns = now_ns();
	pid = fork();
	if (pid < 0)
		fail("fork job process", errno);
	if (pid == 0) {
		close(pfd[0]);
		/* Without an exec nothing closes it for us: the job never holds
		 * the supervisor's channel. */
		close(PC_FD_SYNC);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (script)
			pc_embed_job(script, filter, pfd[1]);
		exec_job(argv, pfd[1]);
	}
	close(pfd[1]);
	do
		n = read(pfd[0], &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(st)) {
		st.msg[sizeof(st.msg) - 1] = '\0';
		send_msg(PC_SYNC_ERROR, st.errnum, 0, st.msg);
		_exit(125);
	}
	return pid;
}

int main(int argc, char **argv)
{
	struct sock_fprog prog;
	bool have_filter;
	const char *script = NULL;
	pid_t job;
	int status = 0;

	/* Nothing in the sandbox may ptrace or read pid 1's memory. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (fcntl(PC_FD_SYNC, F_SETFD, FD_CLOEXEC) < 0)
		fail("sync fd", errno);
	if (argc == 3 && (strcmp(argv[1], "--embed") == 0 || strcmp(argv[1], "--zygote") == 0))
		script = argv[2];
	else if (argc < 2 || argv[1][0] == '-')
		fail("usage: pycell-init --embed SCRIPT | pycell-init PROGRAM [ARG...]", EINVAL);
	have_filter = read_filter(&prog);
	/* Fail closed: an embedded job never runs without its exec filter. */
	if (script && !have_filter)
		fail("no exec filter on fd 6 (supervisor and pycell-init do not match)", EBADF);

	/* Warm mode: this process becomes the zygote (zygote.c). */
	if (strcmp(argv[1], "--zygote") == 0)
		pc_zygote_main(script, &prog);
	job = spawn_job(argv + 1, script, have_filter ? &prog : NULL);
	/* sync 3 */
	send_msg(PC_SYNC_EXEC_OK, 0, 0, NULL);

	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, 0);

		if (p < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: nothing left */
		}
		if (p == job) {
			status = st;
			break;
		}
	}
	/* sync 4 */
	send_msg(PC_SYNC_EXIT, 0, status, NULL);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
