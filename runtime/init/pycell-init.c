/* pycell-init: pid 1 inside the sandbox.
 *
 * It is exec'd by the sandbox child as the last setup step, with the job's
 * descriptors already in place (see sync.h) and the sync socket on fd 5.
 * It forks the job process (pid 2), tells the supervisor whether the exec
 * worked, reaps every orphan that gets re-parented to it, and exits as soon
 * as the job process ends: pid 1 leaving tears down the whole pid namespace,
 * so nothing the job started can outlive it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sync.h"

static void send_msg(int type, int errnum, int status, const char *msg)
{
	struct pc_sync_msg m = { .type = type, .errnum = errnum, .status = status };

	if (msg)
		snprintf(m.msg, sizeof(m.msg), "%s", msg);
	/* SEQPACKET: one record per send, never split. */
	while (send(PC_FD_SYNC, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static void fail(const char *step, int errnum)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "pycell-init: %s", step);
	send_msg(PC_SYNC_ERROR, errnum, 0, buf);
	_exit(125);
}

static void exec_job(char **argv, int status_fd)
{
	sigset_t none;
	int e;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, environ);
	e = errno;
	if (write(status_fd, &e, sizeof(e)) < 0) {
		/* nothing left to report through */
	}
	_exit(127);
}

/* Returns the job's pid once its exec succeeded; reports and exits otherwise. */
static pid_t spawn_job(char **argv)
{
	int pfd[2], e = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		fail("pipe", errno);
	pid = fork();
	if (pid < 0)
		fail("fork job process", errno);
	if (pid == 0) {
		close(pfd[0]);
		exec_job(argv, pfd[1]);
	}
	close(pfd[1]);
	do
		n = read(pfd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == sizeof(e)) {
		char step[300];
		snprintf(step, sizeof(step), "exec '%s'", argv[0]);
		fail(step, e);
	}
	return pid;
}

int main(int argc, char **argv)
{
	pid_t job;
	int status = 0;

	if (argc < 2)
		fail("usage: pycell-init PROGRAM [ARG...]", EINVAL);
	/* Nothing in the sandbox may ptrace or read pid 1's memory. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (fcntl(PC_FD_SYNC, F_SETFD, FD_CLOEXEC) < 0)
		fail("sync fd", errno);

	job = spawn_job(argv + 1);
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
	send_msg(PC_SYNC_EXIT, 0, status, NULL);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
