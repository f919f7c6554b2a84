/* writev_all: every byte of every iovec, in order, across short writes.
 * send_fds / recv_fd: a record and its descriptor across a socketpair. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "util.h"

#define A_LEN (3 << 20)
#define B_LEN (2 << 20)

static unsigned char byte_at(size_t i)
{
	return (unsigned char)(i * 7 + i / 4093);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* The reader checks the stream against the pattern; its exit status says. */
static void __attribute__((noreturn)) reader(int fd)
{
	static unsigned char buf[1 << 16];
	size_t at = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++, at++)
			if (buf[i] != byte_at(at))
				_exit(2);
	_exit(at == A_LEN + B_LEN ? 0 : 3);
}

/* A timer without SA_RESTART interrupts the blocked writev, which then
 * returns what it wrote so far: short writes, some inside an iovec. */
static void test_writev_all_across_short_writes(void **state)
{
	unsigned char *data = malloc(A_LEN + B_LEN);
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { { 0, 500 }, { 0, 500 } };
	int p[2], status;
	pid_t pid;

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < A_LEN + B_LEN; i++)
		data[i] = byte_at(i);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		reader(p[0]);
	}
	close(p[0]);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	struct iovec v[4] = { { data, A_LEN }, { data, 0 }, { data + A_LEN, B_LEN }, { data, 0 } };
	assert_int_equal(writev_all(p[1], v, 4), 0);
	setitimer(ITIMER_REAL, &(struct itimerval){ 0 }, NULL);
	close(p[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(data);
}

static void test_writev_all_reports_a_closed_reader(void **state)
{
	char x[16] = "abc";
	struct iovec v[1] = { { x, sizeof(x) } };
	int p[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(writev_all(p[1], v, 1), -EPIPE);
	close(p[1]);
}

/* The descriptor that arrives is a new one for the same pipe, close-on-exec. */
static void test_send_fds_passes_a_descriptor(void **state)
{
	int sv[2], p[2], got = -2;
	char rec[8] = "record!", in[8] = { 0 }, c = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(send_fds(sv[0], rec, sizeof(rec), &p[1], 1), 0);
	assert_int_equal(recv_fd(sv[1], in, sizeof(in), 0, &got), (ssize_t)sizeof(rec));
	assert_memory_equal(in, rec, sizeof(rec));
	assert_true(got >= 0 && got != p[1]);
	assert_true(fcntl(got, F_GETFD) & FD_CLOEXEC);
	close(p[1]);
	assert_int_equal(write(got, "x", 1), 1);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	close(got);
	/* no descriptor: -1; too many: refused before sending */
	assert_int_equal(send_fds(sv[0], rec, sizeof(rec), NULL, 0), 0);
	assert_int_equal(recv_fd(sv[1], in, sizeof(in), 0, &got), (ssize_t)sizeof(rec));
	assert_int_equal(got, -1);
	assert_int_equal(send_fds(sv[0], rec, sizeof(rec), (int[PC_MAX_PASSED_FDS + 1]){ 0 }, PC_MAX_PASSED_FDS + 1),
			 -EINVAL);
	/* a closed peer: -EPIPE, and no SIGPIPE (MSG_NOSIGNAL) */
	close(sv[1]);
	assert_int_equal(send_fds(sv[0], rec, sizeof(rec), NULL, 0), -EPIPE);
	close(sv[0]), close(p[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writev_all_across_short_writes),
		cmocka_unit_test(test_writev_all_reports_a_closed_reader),
		cmocka_unit_test(test_send_fds_passes_a_descriptor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
