/* pycell serve's handler processes, server side (docs/warm.md).
 *
 * A handler runs a job through its zygote with the cold pipeline, which
 * blocks, so it is a process of its own; forked once and reused, not one
 * fork per job: a fork, its copy-on-write faults and its exit cost the
 * machine ~0.6 ms per job, a tenth of a warm job's CPU. A handler is forked
 * with a copy of the server's zygote table, so it serves only while that
 * copy is current: when a zygote is replaced (s->epoch moves on) idle
 * handlers of older epochs are told to exit (their channel is closed) and
 * busy ones after their job. They also hold the retired zygote's control
 * socket, which keeps it alive until they go. A handler is replaced after
 * HANDLER_JOBS jobs, and after an audit.
 *
 * --max-inflight bounds the handlers: one per running job, idle ones kept
 * for the next jobs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "serve_internal.h"
#include "util.h"

static void close_channel(struct worker *w)
{
	if (w->fd >= 0)
		close(steal_fd(&w->fd));
}

static bool usable(const struct server *s, const struct worker *w)
{
	return w->pid > 0 && w->fd >= 0 && !w->busy && w->epoch == s->epoch;
}

/* In the new handler: nothing of the HTTP side, the signals or the other
 * handlers' channels stays open. */
static void in_child(struct server *s, int keep)
{
	pc_http_close_in_child(s);
	close(s->sfd);
	for (int i = 0; i < MAX_HANDLERS; i++) {
		if (s->w[i].fd >= 0)
			close(s->w[i].fd);
	}
	/* The server alone stops it (EOF on its channel): a SIGINT from the
	 * terminal to the whole process group, or a stray SIGTERM, must not
	 * cut a job short while the server shuts down gracefully (the job's
	 * pipeline then blocks none of them: run.h signals_ignored). A gone
	 * server's pipe is an EPIPE, not a SIGPIPE. */
	signal(SIGTERM, SIG_IGN), signal(SIGINT, SIG_IGN), signal(SIGHUP, SIG_IGN), signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_SETMASK, &(sigset_t){ { 0 } }, NULL);
	pc_handler_main(s, keep);
}

static struct worker *spawn(struct server *s)
{
	struct worker *w = NULL;
	int sv[2];
	pid_t pid;

	for (int i = 0; i < MAX_HANDLERS && !w; i++) {
		if (!s->w[i].pid)
			w = &s->w[i];
	}
	if (!w || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		in_child(s, sv[1]);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return NULL;
	}
	*w = (struct worker){ .pid = pid, .fd = sv[0], .epoch = s->epoch };
	return w;
}

/* The request head with the result pipe's write end, then the body; the
 * handler is idle, blocked reading its channel, so this does not wait on
 * anything but it. */
static int send_work(int fd, const struct conn *c, int zi, int wfd)
{
	struct work q = { .magic = WORK_MAGIC, .route = (uint8_t)c->route, .zi = (uint8_t)zi, .len = (uint32_t)c->len };

	snprintf(q.method, sizeof(q.method), "%s", c->method);
	if (send_fds(fd, &q, sizeof(q), &wfd, 1) < 0)
		return -1;
	for (size_t off = 0; off < c->len;) {
		ssize_t n = send(fd, c->body + off, c->len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int pc_worker_dispatch(struct server *s, struct conn *c, int zi)
{
	struct worker *w = NULL;
	int p[2];

	for (int i = 0; i < MAX_HANDLERS && !w; i++) {
		if (usable(s, &s->w[i]))
			w = &s->w[i];
	}
	if (!w && !(w = spawn(s)))
		return -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if (send_work(w->fd, c, zi, p[1]) < 0) {
		close(p[0]), close(p[1]);
		close_channel(w); /* gone or broken: reaped in pc_worker_reaped */
		return -1;
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	c->rfd = p[0];
	w->busy = true, w->zi = zi, w->gen = s->gen[zi], w->jobs++;
	s->inflight++;
	return 0;
}

static void job_over(struct server *s, struct worker *w)
{
	if (!w->busy)
		return;
	w->busy = false;
	s->inflight--;
}

void pc_worker_on_channel(struct server *s, struct worker *w)
{
	char b = 0;
	ssize_t n;

	do
		n = read(w->fd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n == 1 && b == WORK_DONE_BAD && s->gen[w->zi] == w->gen)
		s->z[w->zi].broken = true;
	job_over(s, w);
	/* EOF (it died), or it served its share: it exits once its channel is closed. */
	if (n != 1 || w->epoch != s->epoch || w->jobs >= HANDLER_JOBS || b != WORK_DONE)
		close_channel(w);
}

int pc_worker_reaped(struct server *s, pid_t pid, int status)
{
	for (int i = 0; i < MAX_HANDLERS; i++) {
		struct worker *w = &s->w[i];

		if (w->pid != pid)
			continue;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			int removed = 0;

			fprintf(stderr, "pycell serve: warning: handler %d ended with status 0x%x\n", (int)pid, status);
			/* Its job group (v1: kept between its jobs) has no owner now. */
			(void)pc_cgroup_gc(&removed, NULL);
		}
		job_over(s, w);
		close_channel(w);
		w->pid = 0;
		return 1;
	}
	return 0;
}

void pc_worker_retire_stale(struct server *s)
{
	for (int i = 0; i < MAX_HANDLERS; i++) {
		struct worker *w = &s->w[i];

		if (w->pid > 0 && !w->busy && w->epoch != s->epoch)
			close_channel(w);
	}
}

void pc_worker_stop_all(struct server *s)
{
	int st;

	for (int i = 0; i < MAX_HANDLERS; i++)
		close_channel(&s->w[i]);
	for (int i = 0; i < MAX_HANDLERS; i++) {
		if (s->w[i].pid > 0 && waitpid(s->w[i].pid, &st, 0) == s->w[i].pid)
			pc_worker_reaped(s, s->w[i].pid, st);
	}
}
