/* `pycell serve`'s listening sockets: the Unix socket (mode 0600: its
 * permissions decide who may submit jobs) and, on request, a loopback TCP
 * port, which anyone on the host can reach (docs/warm.md). Both are handed
 * to libmicrohttpd (MHD_OPTION_LISTEN_SOCKET). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "serve_internal.h"

#define BACKLOG 512

/* The path appears only once the socket listens: bound under a temporary
 * name beside it, then renamed into place, so a client that waits for the
 * path never meets "connection refused" (bind comes before listen). A path
 * too long for the temporary name is bound in place. */
static int bind_listening(int fd, struct sockaddr_un *a, const char *path)
{
	char tmp[sizeof(a->sun_path)];
	int n = snprintf(tmp, sizeof(tmp), "%s.%d~", path, (int)getpid());

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return bind(fd, (struct sockaddr *)a, sizeof(*a)) < 0 || listen(fd, BACKLOG) < 0 ? -1 : 0;
	memcpy(a->sun_path, tmp, (size_t)n + 1);
	unlink(tmp);
	if (bind(fd, (struct sockaddr *)a, sizeof(*a)) < 0)
		return -1;
	if (listen(fd, BACKLOG) < 0 || rename(tmp, path) < 0) {
		int e = errno;

		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

int pc_listen_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "pycell serve: socket path '%s' is too long\n", path);
		return -1;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = S_ISSOCK(st.st_mode) && connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0;

		close(probe);
		if (!S_ISSOCK(st.st_mode) || live) {
			fprintf(stderr, "pycell serve: '%s' exists%s; remove it or choose another path\n", path,
				live ? " and a server answers on it" : " and is not a socket");
			return -1;
		}
		unlink(path); /* a stale socket of a server that died */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	old = umask(0177); /* owner only, from the moment it exists */
	if (fd < 0 || bind_listening(fd, &a, path) < 0) {
		umask(old);
		fprintf(stderr, "pycell serve: cannot listen on '%s': %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

/* "127.0.0.1:PORT", "[::1]:PORT": loopback addresses only. */
static int parse_loopback(const char *arg, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(arg, ':');
	char host[64], *end;
	size_t hl;
	long port;

	if (!colon || (hl = (size_t)(colon - arg)) == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, arg, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1 || !IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			return -1;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	/* 127.0.0.0/8 is loopback; inet_pton refuses the short forms (127.1) */
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1 || (ntohl(a4->sin_addr.s_addr) >> 24) != 127)
		return -1;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	*len = sizeof(*a4);
	return 0;
}

bool pc_listen_tcp_valid(const char *arg)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (parse_loopback(arg, &ss, &len) == 0)
		return true;
	fprintf(stderr,
		"pycell serve: --listen-tcp '%s': give a loopback address and port, 127.0.0.1:PORT or [::1]:PORT "
		"(anyone on this host can submit jobs there; other hosts never can)\n",
		arg);
	return false;
}

int pc_listen_tcp(const char *arg)
{
	struct sockaddr_storage ss;
	char shown[80] = "";
	socklen_t len;
	int fd, one = 1;

	if (parse_loopback(arg, &ss, &len) < 0)
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, BACKLOG) < 0) {
		fprintf(stderr, "pycell serve: cannot listen on '%s': %s\n", arg, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		void *addr = ss.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
						     : (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
		uint16_t port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							      : ((struct sockaddr_in6 *)&ss)->sin6_port);
		char ip[INET6_ADDRSTRLEN];

		if (inet_ntop(ss.ss_family, addr, ip, sizeof(ip)))
			snprintf(shown, sizeof(shown), ss.ss_family == AF_INET ? "%s:%u" : "[%s]:%u", ip, port);
	}
	fprintf(stderr, "pycell serve: also listening on tcp %s (loopback: anyone on this host can submit jobs)\n",
		shown);
	return fd;
}
