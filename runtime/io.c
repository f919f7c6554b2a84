#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define READ_CHUNK 65536

void pc_stream_init(struct pc_stream *s, int fd, size_t limit, int passthrough)
{
	*s = (struct pc_stream){ .fd = fd, .limit = limit, .passthrough = passthrough };
}

void pc_stream_free(struct pc_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	cleanup_closep(&s->fd);
	s->fd = -1;
	s->len = s->cap = 0;
}

/* Appends what still fits under the cap; grows geometrically so a tiny job
 * does not pay for a cap-sized buffer. */
static int keep(struct pc_stream *s, const char *data, size_t n)
{
	size_t room = s->limit - s->len, take = n < room ? n : room;

	if (take == 0)
		return 0;
	if (s->len + take + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *nb;

		while (cap < s->len + take + 1)
			cap *= 2;
		if (cap > s->limit + 1)
			cap = s->limit + 1;
		nb = realloc(s->buf, cap);
		if (!nb)
			return -ENOMEM;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, take);
	s->len += take;
	s->buf[s->len] = '\0';
	if (s->passthrough >= 0)
		(void)write_all(s->passthrough, data, take);
	return 0;
}

/* Reads what is available now. Returns 1 when the stream passed its cap,
 * 0 otherwise, negative errno on a failed read or allocation. */
static int drain(struct pc_stream *s)
{
	char chunk[READ_CHUNK];

	while (s->fd >= 0) {
		ssize_t n = read(s->fd, chunk, sizeof(chunk));
		int r;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		if (n == 0) {
			close(s->fd);
			s->fd = -1;
			return 0;
		}
		s->total += (size_t)n;
		if ((r = keep(s, chunk, (size_t)n)) < 0)
			return r;
		if (s->total > s->limit) {
			s->truncated = true;
			return 1;
		}
	}
	return 0;
}

static int poll_timeout_ms(long long deadline_ns)
{
	long long left = deadline_ns - now_ns();

	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000);
}

/* The resource watch (cpu_ms poll) and a stop signal to pycell; true when
 * either says the job must end now. */
static bool watch_fired(const struct pc_pump_watch *w, long long *next_check, short sig_revents,
			struct pc_pump_outcome *o)
{
	if (!w)
		return false;
	if (sig_revents & POLLIN) {
		struct signalfd_siginfo si;
		if (read(w->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			o->interrupted = (int)si.ssi_signo;
			return true;
		}
	}
	if (w->check && now_ns() >= *next_check) {
		*next_check = now_ns() + w->interval_ms * 1000000LL;
		if (w->check(w->ctx) > 0) {
			o->watch_limit = true;
			return true;
		}
	}
	return false;
}

int pc_pump(struct pc_sandbox *sb, struct pc_stream *out, struct pc_stream *err, struct pc_stream *res,
	    long long deadline_ns, const struct pc_pump_watch *w, struct pc_pump_outcome *o, struct pc_error *e)
{
	struct pc_stream *streams[3] = { out, err, res };
	bool exited = false, killed = false;
	long long next_check = now_ns() + (w ? w->interval_ms : 0) * 1000000LL;

	*o = (struct pc_pump_outcome){ 0 };
	while (!exited) {
		struct pollfd pfd[6];
		int i, n;
		long long wake = w && w->check && !killed && next_check < deadline_ns ? next_check : deadline_ns;

		/* Once the job is being killed, stop emptying its pipes: a writer
		 * that the pump keeps draining runs on until the kernel tears the
		 * pid namespace down (over 1 MiB past a stdout cap was seen). A
		 * full pipe blocks it instead; the drain below takes the rest. */
		for (i = 0; i < 3; i++)
			pfd[i] = (struct pollfd){ .fd = killed ? -1 : streams[i]->fd, .events = POLLIN };
		pfd[3] = (struct pollfd){ .fd = sb->pidfd, .events = POLLIN };
		pfd[4] = (struct pollfd){ .fd = sb->notify_fd, .events = POLLIN };
		pfd[5] = (struct pollfd){ .fd = w && !killed ? w->signal_fd : -1, .events = POLLIN };
		n = poll(pfd, 6, killed ? -1 : poll_timeout_ms(wake));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pc_error_set(e, errno, "poll");
		}
		if (!killed && watch_fired(w, &next_check, pfd[5].revents, o)) {
			pc_sandbox_kill(sb);
			killed = true;
		}
		if (n == 0 && !killed && now_ns() >= deadline_ns) {
			o->timed_out = true;
			pc_sandbox_kill(sb);
			killed = true;
			continue;
		}
		for (i = 0; i < 3; i++) {
			int r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = drain(streams[i]);
			if (r < 0)
				return pc_error_set(e, -r, "read job stream");
			if (r > 0 && !killed) {
				/* Killed at the cap, not after: the job writes no more. */
				if (i == 2)
					o->result_limit = true;
				else
					o->output_limit = true;
				pc_sandbox_kill(sb);
				killed = true;
			}
		}
		if (pfd[4].revents & POLLIN) {
			/* A never-allowed syscall: name it, refuse it, end the job. */
			if (pc_seccomp_notify_handle(sb->notify_fd, o->seccomp_syscall, sizeof(o->seccomp_syscall)) >
				0 &&
			    !killed) {
				pc_sandbox_kill(sb);
				killed = true;
			}
		} else if (pfd[4].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			close(sb->notify_fd); /* every filtered task is gone */
			sb->notify_fd = -1;
		}
		if (pfd[3].revents & POLLIN)
			exited = true;
	}
	/* pid 1 is gone and took the namespace with it: every write end is
	 * closed, so what is left in the pipes ends in EOF. */
	for (int i = 0; i < 3; i++) {
		if (streams[i]->fd >= 0)
			fcntl(streams[i]->fd, F_SETFL, 0);
		int r = drain(streams[i]);
		if (r < 0)
			return pc_error_set(e, -r, "read job stream");
		if (r > 0 && i < 2)
			o->output_limit = true;
		else if (r > 0)
			o->result_limit = true;
	}
	return 0;
}
