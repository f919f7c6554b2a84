/* `pycell run --server SOCKET [JOB.json|-]`: the client form of warm mode.
 * Sends the job to a `pycell serve` on SOCKET and prints its result, with
 * the exit statuses of `pycell run` (cmd_run.c): 0 ok, 1 job error, 2 the job
 * was refused or the invocation unusable, 125 the runtime failed.
 * pc_serve_request is the one client request, also `pycell audit --server`'s. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "result.h"
#include "serve.h"
#include "util.h"

#define CLIENT_MAX_JOB	    (64u << 20)
#define CLIENT_MAX_RESPONSE (256u << 20)

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* The answer's end (head + Content-Length), once its head is in buf; -1
 * before that or without a Content-Length (then the close ends it). */
static long long answer_end(const char *buf, size_t n)
{
	const char *end = memmem(buf, n, "\r\n\r\n", 4), *cl;

	if (!end)
		return -1;
	cl = memmem(buf, (size_t)(end - buf), "\r\nContent-Length:", 17);
	return cl ? (long long)(end + 4 - buf) + strtoll(cl + 17, NULL, 10) : -1;
}

/* Reads the answer up to its Content-Length, without waiting for the
 * server to close (it is on the latency path), or else to end-of-file. */
static char *read_answer(int fd, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1), *nb;
	long long want = -1;
	ssize_t r;

	while (buf && (want < 0 || n < (size_t)want)) {
		if (n == cap) {
			if (cap >= CLIENT_MAX_RESPONSE || !(nb = realloc(buf, cap * 2 + 1))) {
				free(buf);
				return NULL;
			}
			buf = nb, cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (want < 0)
			want = answer_end(buf, n);
	}
	if (buf)
		buf[n] = '\0', *len = n;
	return buf;
}

/* Head and body in one system call where the socket takes them. */
static int send_request(int fd, const char *head, const char *body, size_t len)
{
	struct iovec v[2] = { { (void *)head, strlen(head) }, { (void *)body, len } };

	return writev_all(fd, v, 2) < 0 ? -1 : 0;
}

static int exit_for(int http, const char *body)
{
	json_object *o = json_tokener_parse(body), *st;
	int code = PC_EXIT_RUNTIME;

	if (http == 400)
		code = PC_EXIT_USAGE;
	else if (http == 200 && o && json_object_object_get_ex(o, "status", &st) &&
		 json_object_is_type(st, json_type_string))
		code = strcmp(json_object_get_string(st), "ok") == 0 ? PC_EXIT_OK : PC_EXIT_JOB_ERROR;
	json_object_put(o);
	return code;
}

int pc_serve_request(const char *sock, const char *target, const char *body, size_t len, int *http, char **resp,
		     char **resp_body)
{
	_cleanup_close_ int fd = connect_to(sock);
	char head[320];
	size_t rlen = 0;

	*resp = NULL;
	if (fd < 0)
		return fd;
	snprintf(head, sizeof(head),
		 "POST %s HTTP/1.1\r\nHost: pycell\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n",
		 target, len);
	if (send_request(fd, head, body, len) < 0 || !(*resp = read_answer(fd, &rlen)) ||
	    sscanf(*resp, "HTTP/1.%*c %d", http) != 1 || !(*resp_body = strstr(*resp, "\r\n\r\n"))) {
		free(*resp);
		*resp = NULL;
		return -EBADMSG;
	}
	*resp_body += 4;
	return 0;
}

int pc_cmd_run_server(const char *sock, const char *job_path)
{
	_cleanup_free_ char *job = NULL, *resp = NULL;
	size_t len = 0;
	char *body;
	int r, http = 0;

	if ((r = pc_cli_read_input(job_path, CLIENT_MAX_JOB, &job, &len)) < 0) {
		fprintf(stderr, "pycell run: cannot read job '%s': %s\n", job_path ? job_path : "-", strerror(-r));
		return PC_EXIT_USAGE;
	}
	if ((r = pc_serve_request(sock, "/run", job, len, &http, &resp, &body)) < 0 && r != -EBADMSG) {
		fprintf(stderr,
			"pycell run: cannot reach the server on '%s': %s (is `pycell serve --socket %s` running?)\n",
			sock, strerror(-r), sock);
		return PC_EXIT_USAGE;
	}
	if (r < 0) {
		fprintf(stderr, "pycell run: no answer from the server on '%s'\n", sock);
		return PC_EXIT_RUNTIME;
	}
	if (http != 200 && http != 400 && http != 500) {
		fprintf(stderr, "pycell run: the server answered %d: %s", http, body);
		return http == 413 ? PC_EXIT_USAGE : PC_EXIT_RUNTIME;
	}
	if (write_all(1, body, strlen(body)) < 0)
		return PC_EXIT_RUNTIME;
	return exit_for(http, body);
}
