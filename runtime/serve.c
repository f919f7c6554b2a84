/* `pycell serve`: warm mode behind an HTTP/1.1 API on a Unix socket, and
 * optionally a loopback TCP port (DESIGN.md section 6, docs/warm.md).
 *
 * Processes:
 *   server   this process, one thread: one poll loop over a signalfd, the
 *            HTTP daemons' epoll descriptors (serve_http.c, libmicrohttpd
 *            driven from here), the result pipes of the running handlers
 *            and the queued clients' sockets. It reads every request and
 *            writes every answer; /health and /metrics are answered here.
 *   handler  one per running job (serve_handler.c, serve_worker.c), forked
 *            once and reused: runs the job through its zygote with the
 *            cold pipeline and writes the answer on its result pipe. At most
 *            --max-inflight run at once; more jobs wait in a FIFO queue of
 *            --queue; past that, 503.
 *   zygote   pycell-init --zygote, pid 1 of its own sandbox.
 * Zygotes are replaced after --jobs-per-zygote jobs, when one dies, when a
 * handler reports an anomaly, and when the policy or rootfs changes. A
 * retired zygote finishes its jobs first.
 *
 * SIGTERM, SIGINT, SIGHUP: stop listening (the socket file goes; new
 * clients are refused), answer every running and queued job, then stop the
 * zygotes and exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "result.h"
#include "serve.h"
#include "serve_internal.h"
#include "util.h"

#define DEFAULT_QUEUE		64
#define DEFAULT_REQUEST_TIMEOUT 10

static int start_zygote(struct server *s, int i)
{
	struct pc_error err = { 0 };

	pc_zygote_init(&s->z[i]);
	s->gen[i]++;
	s->epoch++;
	if (pc_zygote_start(&s->z[i], &s->c.policy, &s->c.paths, s->c.rootfs, &err) < 0) {
		fprintf(stderr, "pycell serve: cannot start a zygote: %s\n", err.msg);
		s->z[i].broken = true;
		return -1;
	}
	return 0;
}

/* Retired zygotes finish their jobs, then exit; reaped in reap(). */
static void replace_zygote(struct server *s, int i)
{
	int k;

	for (k = 0; k < MAX_RETIRED && s->retired[k].sb.pidfd >= 0; k++)
		;
	pc_zygote_retire(&s->z[i]);
	if (k < MAX_RETIRED && s->z[i].sb.pid > 0)
		s->retired[k] = s->z[i];
	else
		pc_zygote_stop(&s->z[i]);
	s->replaced++;
	start_zygote(s, i);
	pc_worker_retire_stale(s);
}

static void reap(struct server *s)
{
	int st, i;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pc_worker_reaped(s, p, st))
			continue;
		for (i = 0; i < MAX_RETIRED; i++) {
			if (s->retired[i].sb.pid == p) {
				s->retired[i].sb.pid = -1;
				pc_zygote_stop(&s->retired[i]);
				pc_zygote_init(&s->retired[i]);
			}
		}
		for (i = 0; i < s->pool; i++) {
			if (s->z[i].sb.pid == p) { /* died on its own: an anomaly */
				s->z[i].sb.pid = -1;
				s->z[i].broken = true;
			}
		}
	}
	for (i = 0; i < s->pool; i++) {
		if (s->z[i].broken)
			replace_zygote(s, i);
	}
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void note_sources(struct server *s)
{
	memset(&s->policy_st, 0, sizeof(s->policy_st));
	memset(&s->rootfs_st, 0, sizeof(s->rootfs_st));
	if (s->c.policy.path[0])
		stat(s->c.policy.path, &s->policy_st);
	stat(s->c.rootfs, &s->rootfs_st);
}

/* The policy file or the rootfs directory changed since the zygotes were
 * made: reload the policy and replace every zygote (in-flight jobs finish
 * on the old ones). One stat each per job. A policy that no longer loads
 * keeps the old one in force, and says so. */
static void check_sources(struct server *s)
{
	struct pc_cli_common fresh = { .policy_arg = s->c.policy_arg, .rootfs_arg = s->c.rootfs_arg };
	struct stat p = { 0 }, r = { 0 };
	int i;

	if (s->c.policy.path[0])
		stat(s->c.policy.path, &p);
	stat(s->c.rootfs, &r);
	if (same_file(&p, &s->policy_st) && same_file(&r, &s->rootfs_st))
		return;
	if (pc_cli_setup(&fresh) != 0) {
		fprintf(stderr, "pycell serve: the policy or rootfs changed but does not load; keeping the old one\n");
		pc_cli_cleanup(&fresh);
		note_sources(s);
		return;
	}
	pc_cli_cleanup(&s->c);
	s->c = fresh;
	note_sources(s);
	fprintf(stderr, "pycell serve: policy or rootfs changed: replacing %d zygote(s)\n", s->pool);
	for (i = 0; i < s->pool; i++)
		replace_zygote(s, i);
}

int pc_serve_start_task(struct server *s, struct conn *c)
{
	int zi;

	check_sources(s);
	zi = s->next++ % s->pool;
	if (s->z[zi].broken || pc_worker_dispatch(s, c, zi) < 0)
		return 503;
	if (s->jobs_per_zygote > 0 && ++s->z[zi].jobs >= s->jobs_per_zygote)
		replace_zygote(s, zi);
	return 0;
}

static void begin_stop(struct server *s)
{
	s->stopping = true;
	pc_http_stop_accepting(s);
	unlink(s->socket_path);
}

static void on_signals(struct server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo != SIGCHLD && !s->stopping)
			begin_stop(s);
	}
	reap(s);
}

/* The poll set: signals, each daemon's epoll fd, the handlers' channels,
 * the running jobs' result pipes, and the queued clients (a hang-up drops
 * the job). */
static int fill(struct server *s, struct pollfd *p, struct conn **who, struct worker **wof, int max)
{
	int n = 0;

	p[n++] = (struct pollfd){ .fd = s->sfd, .events = POLLIN };
	for (int i = 0; i < s->n_daemons; i++)
		p[n++] = (struct pollfd){ .fd = pc_http_epoll_fd(s, i), .events = POLLIN };
	for (int i = 0; i < MAX_HANDLERS; i++) {
		if (s->w[i].fd >= 0)
			who[n] = NULL, wof[n] = &s->w[i],
			p[n++] = (struct pollfd){ .fd = s->w[i].fd, .events = POLLIN };
	}
	for (struct conn *c = s->conns; c && n < max; c = c->next) {
		if (c->rfd >= 0)
			wof[n] = NULL, who[n] = c, p[n++] = (struct pollfd){ .fd = c->rfd, .events = POLLIN };
		else if (c->queued)
			wof[n] = NULL, who[n] = c, p[n++] = (struct pollfd){ .fd = c->fd, .events = POLLRDHUP };
	}
	return n;
}

static int serve_loop(struct server *s)
{
	static struct pollfd p[1 + MAX_DAEMONS + 2 * MAX_HANDLERS + MAX_QUEUE];
	static struct conn *who[ARRAY_SIZE(p)];
	static struct worker *wof[ARRAY_SIZE(p)];

	while (!s->stopping || s->inflight > 0 || s->qhead || !pc_http_idle(s)) {
		int n = fill(s, p, who, wof, (int)ARRAY_SIZE(p));

		if (poll(p, (nfds_t)n, pc_http_timeout(s)) < 0 && errno != EINTR)
			return -1;
		if (p[0].revents & POLLIN)
			on_signals(s);
		for (int i = 1 + s->n_daemons; i < n; i++) {
			if (!p[i].revents)
				continue;
			if (wof[i]) {
				if (wof[i]->fd == p[i].fd) /* still open: on_signals may have reaped it */
					pc_worker_on_channel(s, wof[i]);
			} else if (who[i]->rfd == p[i].fd)
				pc_http_read_result(s, who[i]);
			else if (who[i]->queued)
				pc_http_drop_queued(s, who[i]);
		}
		pc_http_dequeue(s);
		pc_http_expire(s);
		pc_http_run(s);
	}
	return 0;
}

static const struct option serve_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "policy", required_argument, NULL, 'p' },
	{ "rootfs", required_argument, NULL, 'r' },
	{ "pool", required_argument, NULL, 'n' },
	{ "jobs-per-zygote", required_argument, NULL, 'j' },
	{ "max-inflight", required_argument, NULL, 'm' },
	{ "queue", required_argument, NULL, 'q' },
	{ "request-timeout", required_argument, NULL, 't' },
	{ "listen-tcp", required_argument, NULL, 'l' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#define SERVE_USAGE                                                                                      \
	"usage: pycell serve --socket PATH [--policy FILE] [--rootfs DIR] [--pool N (1)]\n"              \
	"                    [--jobs-per-zygote K (1000)] [--max-inflight M (32)] [--queue Q (64)]\n"    \
	"                    [--request-timeout S (10)] [--listen-tcp 127.0.0.1:PORT]\n"                 \
	"  POST /run (or /v1/jobs) with a job JSON body -> the result JSON; GET /health (/v1/health);\n" \
	"  GET /metrics (Prometheus text); POST /v1/audit (the isolation audit, run warm)\n"

static int parse_args(struct server *s, int argc, char **argv)
{
	int opt;

	*s = (struct server){ .pool = 1,
			      .jobs_per_zygote = 1000,
			      .max_inflight = 32,
			      .max_queue = DEFAULT_QUEUE,
			      .request_timeout = DEFAULT_REQUEST_TIMEOUT,
			      .sfd = -1 };
	while ((opt = getopt_long(argc, argv, "h", serve_opts, NULL)) != -1) {
		switch (opt) {
		case 's': s->socket_path = optarg; break;
		case 'p': s->c.policy_arg = optarg; break;
		case 'r': s->c.rootfs_arg = optarg; break;
		case 'n': s->pool = atoi(optarg); break;
		case 'j': s->jobs_per_zygote = atoi(optarg); break;
		case 'm': s->max_inflight = atoi(optarg); break;
		case 'q': s->max_queue = atoi(optarg); break;
		case 't': s->request_timeout = atoi(optarg); break;
		case 'l': s->tcp_arg = optarg; break;
		case 'h': fputs(SERVE_USAGE, stdout); return 0;
		default: fputs(SERVE_USAGE, stderr); return PC_EXIT_USAGE;
		}
	}
	if (!s->socket_path || optind != argc || s->pool < 1 || s->pool > MAX_POOL || s->max_inflight < 1 ||
	    s->max_inflight > MAX_HANDLERS || s->jobs_per_zygote < 0 || s->max_queue < 0 || s->max_queue > MAX_QUEUE ||
	    s->request_timeout < 1) {
		fprintf(stderr,
			"pycell serve: --socket is required; --pool 1..%d, --max-inflight 1..%d, --queue 0..%d, "
			"--request-timeout >= 1\n%s",
			MAX_POOL, MAX_HANDLERS, MAX_QUEUE, SERVE_USAGE);
		return PC_EXIT_USAGE;
	}
	if (s->tcp_arg && !pc_listen_tcp_valid(s->tcp_arg))
		return PC_EXIT_USAGE;
	s->qtail = &s->qhead;
	return -1;
}

/* Listening sockets and their daemons; the zygotes are up already. */
static int open_http(struct server *s)
{
	int fd;

	if (pc_http_load(&s->mhd) < 0)
		return -1;
	if ((fd = pc_listen_unix(s->socket_path)) < 0)
		return -1;
	if (pc_http_start(s, fd) < 0) {
		close(fd);
		unlink(s->socket_path);
		return -1;
	}
	if (s->tcp_arg && ((fd = pc_listen_tcp(s->tcp_arg)) < 0 || pc_http_start(s, fd) < 0)) {
		if (fd >= 0)
			close(fd);
		pc_http_stop(s);
		unlink(s->socket_path);
		return -1;
	}
	return 0;
}

static void stop_zygotes(struct server *s)
{
	for (int i = 0; i < s->pool; i++)
		pc_zygote_stop(&s->z[i]);
	for (int i = 0; i < MAX_RETIRED; i++)
		pc_zygote_stop(&s->retired[i]);
}

int pc_cmd_serve(int argc, char **argv)
{
	static struct server s; /* large; the entry point owns it */
	sigset_t mask;
	int i, rc;

	if ((rc = parse_args(&s, argc, argv)) >= 0)
		return rc;
	if ((rc = pc_cli_setup(&s.c)) != 0)
		return rc;
	for (i = 0; i < MAX_POOL; i++)
		pc_zygote_init(&s.z[i]);
	for (i = 0; i < MAX_RETIRED; i++)
		pc_zygote_init(&s.retired[i]);
	for (i = 0; i < MAX_HANDLERS; i++)
		s.w[i].fd = -1;
	note_sources(&s);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM), sigaddset(&mask, SIGINT), sigaddset(&mask, SIGHUP), sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	s.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	rc = s.sfd < 0 ? -1 : 0;
	for (i = 0; rc == 0 && i < s.pool; i++)
		rc = start_zygote(&s, i);
	if (rc == 0 && (rc = open_http(&s)) == 0) {
		fprintf(stderr, "pycell serve: listening on '%s' (pool %d, policy '%s')\n", s.socket_path, s.pool,
			s.c.policy.name);
		rc = serve_loop(&s);
		pc_worker_stop_all(&s);
		pc_http_stop(&s);
		unlink(s.socket_path);
		fprintf(stderr, "pycell serve: stopped after %lu requests (%lu zygote replacements)\n", s.served,
			s.replaced);
	}
	stop_zygotes(&s);
	if (s.sfd >= 0)
		close(s.sfd);
	pc_cli_cleanup(&s.c);
	return rc < 0 ? PC_EXIT_RUNTIME : 0;
}
