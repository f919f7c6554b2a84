/* writev_all: every byte of every iovec, in order, across short writes. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writev_all_across_short_writes),
		cmocka_unit_test(test_writev_all_reports_a_closed_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
