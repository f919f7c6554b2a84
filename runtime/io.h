/* Supervision loop: pump the job's streams with caps, enforce the wall
 * clock, notice pid 1's exit. */
#ifndef PYCELL_IO_H
#define PYCELL_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "sandbox.h"

struct pc_stream {
	int fd;		 /* read end (owned), non-blocking; -1 once at EOF */
	int passthrough; /* >= 0: copy the kept bytes here as they arrive */
	size_t limit;	 /* bytes kept; one more byte is a violation */
	char *buf;	 /* kept bytes (malloc'd, owned) */
	size_t len;
	size_t cap;   /* allocated size of buf */
	size_t total; /* bytes read, kept or not (<= limit + one read + one pipe buffer) */
	bool truncated;
};

struct pc_pump_outcome {
	bool timed_out;
	bool output_limit;	  /* stdout or stderr passed its cap */
	bool result_limit;	  /* the result channel passed its cap */
	char seccomp_syscall[64]; /* a never-allowed call the filter caught, "" if none */
	bool watch_limit;	  /* the watch's check fired (cpu_ms) and the job was killed */
	int interrupted;	  /* a signal to pycell ended the job (its number), 0 if none */
};

/* Periodic check and signal source for the pump (resources.c). */
struct pc_pump_watch {
	int (*check)(void *ctx); /* every interval_ms; > 0: kill the job */
	void *ctx;
	int interval_ms;
	int signal_fd; /* signalfd: readable = pycell was asked to stop; -1 if none */
};

void pc_stream_init(struct pc_stream *s, int fd, size_t limit, int passthrough);
void pc_stream_free(struct pc_stream *s);

/* Runs until pid 1 exits, or kills the sandbox at the deadline or at the
 * first stream over its cap, then drains what is left. */
int pc_pump(struct pc_sandbox *sb, struct pc_stream *out, struct pc_stream *err, struct pc_stream *res,
	    long long deadline_ns, const struct pc_pump_watch *w, struct pc_pump_outcome *o, struct pc_error *e);

#endif
