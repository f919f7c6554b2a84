/* pycell serve's HTTP side: libmicrohttpd (MHD) without threads of its own.
 *
 * Each daemon runs in MHD_USE_EPOLL mode: its epoll descriptor sits in
 * serve.c's one poll loop beside the signalfd and the handlers' result
 * pipes, and MHD_run does its work without blocking. The server stays one
 * thread, so forking a handler from it is safe (fork copies only the
 * calling thread: a lock held by another thread would stay locked forever
 * in the child).
 *
 * A request's life (one per connection: every answer says Connection: close):
 *   head arrived      route, method, Content-Length checks (404 405 411 413 501)
 *   body arrived      a job: a free slot hands it to a handler at once; else it
 *                     waits in the FIFO queue; a full queue answers 503. A
 *                     running or queued request's connection is suspended
 *                     (MHD_ALLOW_SUSPEND_RESUME): MHD does not touch it.
 *   handler answered  its result pipe has the outcome and the document: the
 *                     connection is resumed and MHD sends the answer.
 * A queued client that hangs up is dropped before its job runs. The whole
 * request must arrive within --request-timeout seconds (a slow client that
 * trickles bytes is answered 408); MHD's own timeout closes idle ones.
 *
 * Why dlopen and not a link: libmicrohttpd pulls in gnutls and eight more
 * libraries whose constructors run at every process start: +1.8 ms for every
 * `pycell run` and every `pycell run --server` client (measured here), a
 * third of the warm client's budget. Only `pycell serve` loads it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve_internal.h"
#include "util.h"

#define MHD_SONAME     "libmicrohttpd.so.12" /* ABI of Debian's libmicrohttpd12 (0.9.x) */
#define CONN_MEMORY    (32u << 10)	     /* per connection: the request head must fit */
#define IDLE_TIMEOUT_S 30
#define ENDPOINTS      "POST /run (/v1/jobs), POST /v1/audit, GET /health (/v1/health), GET /metrics"
#define JSON_TYPE      "application/json"
#define RETRY_AFTER_S  "1"
/* Connections beyond the jobs' slots and queue places: probes, requests
 * still arriving. The limit also bounds the request bodies held in memory. */
#define SPARE_CONNS 64

int pc_http_load(struct pc_mhd *m)
{
	if (!(m->lib = dlopen(MHD_SONAME, RTLD_NOW | RTLD_LOCAL))) {
		fprintf(stderr,
			"pycell serve: cannot load libmicrohttpd: %s (Debian: apt-get install libmicrohttpd12)\n",
			dlerror());
		return -1;
	}
#define X(f)                                                                                             \
	if (!(m->f = (__typeof__(m->f))dlsym(m->lib, "MHD_" #f))) {                                      \
		fprintf(stderr, "pycell serve: libmicrohttpd lacks MHD_%s: need 0.9.75 or later\n", #f); \
		return -1;                                                                               \
	}
	PC_MHD_FUNCS(X)
#undef X
	return 0;
}

/* ------------------------------------------------------------ answers */

/* Sets c's answer; it goes out from the access handler (deliver). Takes body
 * (malloc'd) whatever happens. */
static void set_answer(struct server *s, struct conn *c, const struct outcome *o, char *body, size_t len,
		       const char *type)
{
	struct MHD_Response *r = s->mhd.create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

	if (!r) {
		free(body);
		c->drop = true; /* nothing to say it with: close */
		return;
	}
	s->mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	s->mhd.add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (o->http == 503)
		s->mhd.add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S);
	c->resp = r;
	c->out = *o;
}

static void set_error(struct server *s, struct conn *c, unsigned status, const char *code, const char *message)
{
	struct outcome o = { .http = (uint16_t)status };
	char *body = NULL;
	int n = code ? asprintf(&body, "{\"error\": {\"code\": \"%s\", \"message\": \"%s\"}}\n", code, message)
		     : asprintf(&body, "{\"error\": {\"code\": \"HTTP_%u\", \"message\": \"%s\"}}\n", status, message);

	if (n < 0) {
		c->drop = true;
		return;
	}
	if (status == 503)
		s->m.busy++;
	set_answer(s, c, &o, body, (size_t)n, JSON_TYPE);
}

/* From the access handler: queue c's answer (or close) and count it. */
static enum MHD_Result deliver(struct server *s, struct conn *c)
{
	enum MHD_Result ret;

	if (!c->resp)
		return MHD_NO;
	ret = s->mhd.queue_response(c->mc, c->out.http, c->resp);
	s->mhd.destroy_response(c->resp);
	c->resp = NULL;
	c->answered = true;
	pc_metrics_count(&s->m, &c->out);
	if (c->out.http != 503)
		s->served++;
	return ret;
}

static void suspend(struct server *s, struct conn *c)
{
	s->mhd.suspend_connection(c->mc);
	c->suspended = true;
}

static void resume(struct server *s, struct conn *c)
{
	if (c->suspended) {
		c->suspended = false;
		s->mhd.resume_connection(c->mc);
	}
}

/* ------------------------------------------------------------ requests */

static struct conn *conn_of(struct server *s, struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *i = s->mhd.get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return i ? i->socket_context : NULL;
}

static bool is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* The head has arrived: route it, and answer at once whatever needs no body.
 * POST bodies need Content-Length (no chunked uploads), within the policy's
 * max_job_bytes (+ slack for the JSON around the code). */
static void on_head(struct server *s, struct conn *c, const char *url, const char *method)
{
	const char *te, *cl;
	char *text, *end;
	unsigned long long want;

	if (is(url, "/health") || is(url, "/v1/health") || is(url, "/metrics")) {
		if (!is(method, "GET"))
			return set_error(s, c, 405, NULL, "use GET");
		text = url[1] == 'm' ? pc_metrics_text(s) : pc_health_json(s);
		if (!text)
			return set_error(s, c, 500, NULL, "out of memory");
		return set_answer(s, c, &(struct outcome){ .http = 200 }, text, strlen(text),
				  url[1] == 'm' ? "text/plain; version=0.0.4; charset=utf-8" : JSON_TYPE);
	}
	if (is(url, "/run") || is(url, "/v1/jobs"))
		c->route = R_JOB;
	else if (is(url, "/v1/audit"))
		c->route = R_AUDIT;
	else
		return set_error(s, c, 404, NULL, "no such endpoint: " ENDPOINTS);
	if (!is(method, "POST"))
		return set_error(s, c, 405, NULL, c->route == R_JOB ? "use POST with a job JSON body" : "use POST");
	snprintf(c->method, sizeof(c->method), "%s", method);
	te = s->mhd.lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	cl = s->mhd.lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (te)
		return set_error(s, c, 501, NULL, "chunked bodies are not supported: send Content-Length");
	if (!cl)
		return set_error(s, c, 411, NULL, "Content-Length required");
	errno = 0;
	want = cl ? strtoull(cl, &end, 10) : 0;
	if (cl && (errno || *end))
		return set_error(s, c, 400, NULL, "malformed Content-Length");
	if (want > s->c.policy.max_job_bytes + 4096)
		return set_error(s, c, 413, NULL, "request too large");
	if (!(c->body = malloc(want + 1)))
		return set_error(s, c, 500, NULL, "out of memory");
	c->cap = want;
}

/* The body has arrived: run the job now, queue it, or refuse it. */
static void on_complete(struct server *s, struct conn *c)
{
	int st;

	c->have_request = true;
	c->t_req = now_ns();
	c->body[c->len] = '\0';
	if (s->stopping)
		return set_error(s, c, 503, "SHUTTING_DOWN", "the server is shutting down");
	if (s->inflight < s->max_inflight && !s->qhead) {
		if ((st = pc_serve_start_task(s, c)) != 0)
			return set_error(s, c, 503, "BUSY", "no zygote ready or no handler");
	} else if (s->qlen < s->max_queue) {
		c->queued = true;
		*s->qtail = c;
		s->qtail = &c->qnext;
		s->qlen++;
	} else {
		return set_error(s, c, 503, "BUSY", "all slots busy and the queue is full");
	}
	suspend(s, c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct server *s = cls;
	struct conn *c = *req_cls;

	(void)version;
	if (!c) {
		if (!(c = conn_of(s, mc)))
			return MHD_NO;
		*req_cls = c;
		on_head(s, c, url, method);
	} else if (*upload_size) {
		size_t n = *upload_size;

		if (!c->body || n > c->cap - c->len)
			return MHD_NO; /* MHD enforces Content-Length; never more than announced */
		memcpy(c->body + c->len, upload, n);
		c->len += n;
		*upload_size = 0;
		return MHD_YES;
	} else if (!c->have_request && !c->resp && !c->drop) {
		on_complete(s, c);
	}
	if (c->drop)
		return MHD_NO;
	return c->resp ? deliver(s, c) : MHD_YES;
}

/* ------------------------------------------------------------ results */

static void finish_result(struct server *s, struct conn *c)
{
	struct outcome o;
	size_t body;

	if (c->res_len < sizeof(o)) {
		o = (struct outcome){ .magic = 0 };
	} else {
		memcpy(&o, c->res, sizeof(o));
	}
	body = c->res_len >= sizeof(o) ? c->res_len - sizeof(o) : 0;
	if (o.magic != OUTCOME_MAGIC || o.len != body) {
		free(steal_pointer(&c->res));
		s->m.bad_reports++;
		o = (struct outcome){ .http = 500,
				      .job = c->route == R_JOB,
				      .seconds = (double)(now_ns() - c->t_req) / 1e9 };
		snprintf(o.code, sizeof(o.code), "INTERNAL_ERROR");
		char *doc = strdup("{\"status\": \"error\", \"error\": {\"code\": \"INTERNAL_ERROR\", \"message\": "
				   "\"the job's handler ended without an answer\"}}\n");
		if (!doc)
			c->drop = true;
		else
			set_answer(s, c, &o, doc, strlen(doc), JSON_TYPE);
	} else {
		o.code[sizeof(o.code) - 1] = '\0';
		o.seconds = (double)(now_ns() - c->t_req) / 1e9; /* queue wait included */
		memmove(c->res, c->res + sizeof(o), body);
		set_answer(s, c, &o, steal_pointer(&c->res), body, JSON_TYPE);
	}
	c->res_len = c->res_cap = 0;
	resume(s, c);
}

void pc_http_read_result(struct server *s, struct conn *c)
{
	struct outcome o;
	ssize_t n;

	for (;;) {
		if (c->res_len == c->res_cap) {
			size_t cap = c->res_cap ? c->res_cap * 2 : 16384;
			char *nb = cap <= MAX_RESULT ? realloc(c->res, cap) : NULL;

			if (!nb)
				break; /* answered as a handler without an answer */
			c->res = nb, c->res_cap = cap;
		}
		n = read(c->rfd, c->res + c->res_len, c->res_cap - c->res_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		c->res_len += (size_t)n;
		/* Answer as soon as the document is whole, before the handler exits. */
		if (c->res_len >= sizeof(o) && (memcpy(&o, c->res, sizeof(o)), c->res_len == sizeof(o) + o.len))
			break;
	}
	close(steal_fd(&c->rfd));
	finish_result(s, c);
}

/* ------------------------------------------------------------- queue */

static bool client_gone(const struct conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void unqueue(struct server *s, struct conn *c)
{
	struct conn **pp;

	for (pp = &s->qhead; *pp && *pp != c; pp = &(*pp)->qnext)
		;
	if (!*pp)
		return;
	*pp = c->qnext;
	if (s->qtail == &c->qnext)
		s->qtail = pp;
	c->qnext = NULL;
	c->queued = false;
	s->qlen--;
}

void pc_http_drop_queued(struct server *s, struct conn *c)
{
	unqueue(s, c);
	c->drop = true;
	s->m.dropped++;
	resume(s, c); /* the access handler then says MHD_NO: closed */
}

void pc_http_dequeue(struct server *s)
{
	struct conn *c;

	while ((c = s->qhead) && s->inflight < s->max_inflight) {
		if (client_gone(c)) {
			pc_http_drop_queued(s, c);
			continue;
		}
		unqueue(s, c);
		if (pc_serve_start_task(s, c) != 0) {
			set_error(s, c, 503, "BUSY", "no zygote ready or no handler");
			resume(s, c);
		}
	}
}

/* ------------------------------------------------------ connections */

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct server *s = cls;
	struct conn *c = *socket_context;
	const union MHD_ConnectionInfo *i;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		i = s->mhd.get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!i || !(c = calloc(1, sizeof(*c))))
			return; /* the access handler finds no context and closes it */
		c->mc = mc, c->fd = i->connect_fd, c->rfd = -1, c->t_open = now_ns();
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		*socket_context = c;
		return;
	}
	if (!c)
		return;
	if (c->queued)
		unqueue(s, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->resp)
		s->mhd.destroy_response(c->resp);
	free(c->body);
	free(c->res);
	free(c);
	*socket_context = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("pycell serve: libmicrohttpd: ", stderr);
	vfprintf(stderr, fmt, ap);
}

/* Not MHD_USE_TURBO: it closes a connection without EPOLL_CTL_DEL first,
 * and a handler forked a moment before may still hold that socket, which
 * keeps the registration (and a pointer to the freed connection) alive. */
int pc_http_start(struct server *s, int lfd)
{
	struct MHD_Daemon *d;

	if (s->n_daemons == MAX_DAEMONS)
		return -1;
	d = s->mhd.start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request,
				s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				(size_t)CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)(s->max_inflight + s->max_queue + SPARE_CONNS),
				MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "pycell serve: libmicrohttpd did not start\n");
		return -1;
	}
	s->d[s->n_daemons] = d;
	s->lfd[s->n_daemons++] = lfd;
	return 0;
}

/* Stops listening (new connections are refused); open ones carry on. */
void pc_http_stop_accepting(struct server *s)
{
	for (int i = 0; i < s->n_daemons; i++) {
		int fd = s->mhd.quiesce_daemon(s->d[i]);

		if (fd >= 0)
			close(fd);
		s->lfd[i] = -1;
	}
}

void pc_http_stop(struct server *s)
{
	for (int i = 0; i < s->n_daemons; i++) {
		s->mhd.stop_daemon(s->d[i]);
		if (s->lfd[i] >= 0)
			close(s->lfd[i]);
	}
	s->n_daemons = 0;
}

int pc_http_epoll_fd(const struct server *s, int i)
{
	const union MHD_DaemonInfo *info = s->mhd.get_daemon_info(s->d[i], MHD_DAEMON_INFO_EPOLL_FD);

	return info ? info->epoll_fd : -1;
}

void pc_http_run(struct server *s)
{
	for (int i = 0; i < s->n_daemons; i++)
		s->mhd.run(s->d[i]);
}

static long long deadline(const struct server *s, const struct conn *c)
{
	return c->t_open + (long long)s->request_timeout * 1000000000LL;
}

int pc_http_timeout(struct server *s)
{
	MHD_UNSIGNED_LONG_LONG t;
	long long now = now_ns(), ms = -1;

	for (int i = 0; i < s->n_daemons; i++) {
		if (s->mhd.get_timeout(s->d[i], &t) == MHD_YES && (ms < 0 || (long long)t < ms))
			ms = (long long)t;
	}
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->have_request || c->answered || c->timed_out)
			continue;
		long long left = (deadline(s, c) - now) / 1000000 + 1;
		if (ms < 0 || left < ms)
			ms = left < 0 ? 0 : left;
	}
	return ms > 1000 || ms < 0 ? 1000 : (int)ms;
}

/* A request that has not arrived in full by its deadline (a client that
 * trickles bytes keeps MHD's idle timeout from firing): answer 408 on the
 * socket, which MHD has not written to, and shut it down; MHD then reads
 * end-of-file and closes the connection. */
void pc_http_expire(struct server *s)
{
	static const char body[] =
	    "{\"error\": {\"code\": \"HTTP_408\", \"message\": \"request not received in time\"}}\n";
	long long now = now_ns();
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 408 Request Timeout\r\nContent-Type: " JSON_TYPE
			 "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 sizeof(body) - 1, body);

	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->have_request || c->answered || c->timed_out || now < deadline(s, c))
			continue;
		c->timed_out = true;
		(void)!send(c->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		shutdown(c->fd, SHUT_RDWR);
		pc_metrics_count(&s->m, &(struct outcome){ .http = 408 });
		s->m.timeouts++;
	}
}

void pc_http_close_in_child(struct server *s)
{
	for (int i = 0; i < s->n_daemons; i++) {
		int efd = pc_http_epoll_fd(s, i);

		if (efd >= 0)
			close(efd);
		if (s->lfd[i] >= 0)
			close(s->lfd[i]);
	}
	for (struct conn *c = s->conns; c; c = c->next) {
		close(c->fd);
		if (c->rfd >= 0)
			close(c->rfd);
	}
}

bool pc_http_idle(const struct server *s)
{
	return !s->conns;
}
