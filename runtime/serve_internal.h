/* `pycell serve` internals, shared by its files (docs/warm.md):
 *   serve.c          the entry point, the poll loop, signals, the zygote pool
 *   serve_http.c     libmicrohttpd: the daemons, requests, the queue, answers
 *   serve_worker.c   the handler processes: forked once, reused for jobs
 *   serve_handler.c  a handler's loop: one job (or audit) per request
 *   serve_metrics.c  /metrics and /health documents, the counters
 *   serve_listen.c   the listening sockets (Unix, loopback TCP) */
#ifndef PYCELL_SERVE_INTERNAL_H
#define PYCELL_SERVE_INTERNAL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cli.h"
#include "zygote.h"

#define MAX_POOL     8
#define MAX_RETIRED  32
#define MAX_HANDLERS 256
#define MAX_QUEUE    4096
#define MAX_DAEMONS  2	  /* the Unix socket, optionally loopback TCP */
#define HANDLER_JOBS 1000 /* a handler is replaced after this many */
#define MAX_CODES    48	  /* distinct (status, error code) pairs counted; more go to "OTHER" */
#define MAX_HTTP     16	  /* distinct HTTP statuses counted */
#define MAX_RESULT   (256u << 20)

/* What a handler tells the server about its answer, at the head of its
 * result pipe; `len` bytes of body follow. */
struct outcome {
	uint32_t magic;
	uint16_t http;	/* the HTTP status to answer */
	uint8_t job;	/* a job was run or refused: status, code and seconds are set */
	uint8_t ok;	/* its result's status was "ok" */
	char code[32];	/* its error code, "" when ok */
	double seconds; /* handler side: 0; the server measures from the request read */
	uint32_t len;	/* body bytes that follow */
};
#define OUTCOME_MAGIC 0x70636f32u

/* The server's request to an idle handler on its channel (a stream
 * socket), with the write end of the job's result pipe (SCM_RIGHTS); `len`
 * body bytes follow. The handler answers on the result pipe, then writes
 * one byte on the channel once the job is cleaned up: its slot is free. */
struct work {
	uint32_t magic;
	uint8_t route; /* enum route */
	uint8_t zi;    /* the zygote: s->z[zi] in the handler's copy */
	char method[16];
	uint32_t len;
};
#define WORK_MAGIC    0x70637732u
#define WORK_DONE     'd'
#define WORK_DONE_BAD 'z' /* done; the zygote misbehaved: replace it */
#define WORK_DONE_END 'e' /* done, and this handler should be replaced (after an audit) */

/* Latency buckets (seconds) of pycell_job_duration_seconds; +Inf is implicit. */
#define N_BUCKETS 13

struct metrics {
	struct {
		bool ok;
		char code[32];
		unsigned long n;
	} jobs[MAX_CODES];
	int n_jobs;
	struct {
		int status;
		unsigned long n;
	} http[MAX_HTTP];
	int n_http;
	unsigned long bucket[N_BUCKETS]; /* not cumulative here; cumulated when written */
	unsigned long count, busy, dropped, timeouts, bad_reports;
	double sum;
};

/* The libmicrohttpd calls we make, resolved by dlopen (serve_http.c says why). */
/* clang-format off */
#define PC_MHD_FUNCS(X) \
	X(start_daemon) X(stop_daemon) X(quiesce_daemon) X(run) X(get_timeout) X(get_daemon_info) \
	X(get_connection_info) X(lookup_connection_value) X(suspend_connection) X(resume_connection) \
	X(create_response_from_buffer) X(add_response_header) X(queue_response) X(destroy_response)
/* clang-format on */
struct pc_mhd {
	void *lib;
#define X(f) __typeof__(MHD_##f) *f;
	PC_MHD_FUNCS(X)
#undef X
};

enum route { R_NONE, R_JOB, R_AUDIT };

/* One client connection (one request: every answer says Connection: close). */
struct conn {
	struct conn *prev, *next; /* every open connection */
	struct conn *qnext;	  /* the queue, FIFO */
	struct MHD_Connection *mc;
	int fd;		   /* the client socket (MHD's; closed in handlers) */
	long long t_open;  /* accepted: the whole request must arrive by t_open + request timeout */
	long long t_req;   /* request read */
	bool have_request; /* the request has arrived in full */
	bool answered;	   /* its answer is queued in MHD */
	bool queued, suspended, drop, timed_out;
	enum route route;
	char method[16];
	char *body;
	size_t len, cap; /* cap: its Content-Length */
	/* its job's handler (running) and the answer it writes */
	int rfd;
	char *res;
	size_t res_len, res_cap;
	/* the answer, queued once the connection is resumed */
	struct MHD_Response *resp;
	struct outcome out;
};

struct server {
	struct pc_cli_common c;
	const char *socket_path;
	const char *tcp_arg; /* --listen-tcp ADDR:PORT */
	int pool, jobs_per_zygote, max_inflight, max_queue, request_timeout;
	struct pc_zygote z[MAX_POOL];
	unsigned gen[MAX_POOL]; /* bumped on every replacement */
	struct pc_zygote retired[MAX_RETIRED];
	unsigned epoch; /* bumped whenever a zygote is replaced */
	struct worker {
		pid_t pid;	/* 0: a free entry */
		int fd;		/* its channel, -1 once closed (it exits on EOF) */
		unsigned epoch; /* s->epoch when forked: its copies of the zygotes */
		int jobs;
		bool busy;
		int zi;
		unsigned gen; /* the zygote's generation its job went to */
	} w[MAX_HANDLERS];
	int inflight, next, sfd;
	unsigned long served, replaced;
	struct metrics m;
	struct stat policy_st, rootfs_st; /* what the zygotes were made from */
	/* HTTP */
	struct pc_mhd mhd;
	struct MHD_Daemon *d[MAX_DAEMONS];
	int lfd[MAX_DAEMONS], n_daemons;
	struct conn *conns;	     /* every open connection */
	struct conn *qhead, **qtail; /* waiting for a slot */
	int qlen, n_conns;
	bool stopping;
};

/* serve.c */
/* Starts c's job in a handler; 0, or the HTTP status to refuse with. */
int pc_serve_start_task(struct server *s, struct conn *c);

/* serve_worker.c */
/* Hands c's request to an idle handler of the current epoch (forking one
 * when none is idle); c->rfd gets its result pipe. 0 or -1. */
int pc_worker_dispatch(struct server *s, struct conn *c, int zi);
/* A handler's channel became readable: done, or gone. */
void pc_worker_on_channel(struct server *s, struct worker *w);
/* A child exited: 1 when it was a handler. */
int pc_worker_reaped(struct server *s, pid_t pid, int status);
/* After a zygote replacement: idle handlers of an older epoch exit. */
void pc_worker_retire_stale(struct server *s);
/* At shutdown, every handler idle: close their channels and reap them. */
void pc_worker_stop_all(struct server *s);

/* serve_http.c */
int pc_http_load(struct pc_mhd *m);
int pc_http_start(struct server *s, int lfd);
void pc_http_stop_accepting(struct server *s);
void pc_http_stop(struct server *s);
void pc_http_run(struct server *s);
int pc_http_epoll_fd(const struct server *s, int i);
/* Poll timeout in ms for MHD and the request deadlines (-1: none). */
int pc_http_timeout(struct server *s);
void pc_http_expire(struct server *s);
/* A handler's pipe became readable: read, and answer once complete. */
void pc_http_read_result(struct server *s, struct conn *c);
/* Slots are free: start queued jobs in order, dropping gone clients. */
void pc_http_dequeue(struct server *s);
void pc_http_drop_queued(struct server *s, struct conn *c);
/* In a forked handler: close every descriptor of the HTTP side. */
void pc_http_close_in_child(struct server *s);
bool pc_http_idle(const struct server *s);

/* serve_handler.c: a handler's loop on its channel; exits at EOF. */
void pc_handler_main(struct server *s, int ch) __attribute__((noreturn));

/* serve_metrics.c */
void pc_metrics_count(struct metrics *m, const struct outcome *o);
char *pc_metrics_text(const struct server *s);
char *pc_health_json(const struct server *s);

/* serve_listen.c */
int pc_listen_unix(const char *path);
bool pc_listen_tcp_valid(const char *arg);
int pc_listen_tcp(const char *arg);

#endif
