/* pc_prefault_run: in a fork, each listed page becomes the fork's own copy
 * with its bytes unchanged; a listed page that is gone or not writable is
 * skipped without a crash (SIGSEGV or SIGBUS), and the fault handlers are
 * put back as they were; a range off page boundaries is refused. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "init/prefault.h"

#define PAGE	     4096
#define PM_EXCLUSIVE (1ULL << 56)

/* Bit 56 of /proc/self/pagemap: the page is mapped by this process only. */
static int exclusive(const void *page)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ssize_t n = pread(fd, &e, sizeof(e), (off_t)((uintptr_t)page / PAGE * sizeof(e)));

	close(fd);
	return n == (ssize_t)sizeof(e) && (e & PM_EXCLUSIVE);
}

static int set_ranges(const uint64_t *pairs, size_t n)
{
	return pc_prefault_set(pairs, n * 2 * sizeof(uint64_t));
}

/* The byte at offset i of the pages copies_pages() is given. */
static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 31 + 7);
}

/* body runs in a fork, on `pages` fresh private pages the parent filled
 * (with pattern(), or all with 0x5a): its return value is its exit status,
 * 0 a pass, N the failed step; a signal (a fault let through) fails too. */
static void passes_in_child(int (*body)(unsigned char *), size_t pages, bool patterned)
{
	unsigned char *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int status = -1;
	pid_t pid;

	assert_true(mem != MAP_FAILED);
	for (size_t i = 0; i < pages * PAGE; i++)
		mem[i] = patterned ? pattern(i) : 0x5a;
	pid = fork();
	if (pid == 0) {
		/* Not cmocka's handlers: a fault the code under test lets
		 * through must end this child, not run the suite in it. */
		signal(SIGSEGV, SIG_DFL), signal(SIGBUS, SIG_DFL);
		_exit(body(mem));
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	munmap(mem, pages * PAGE);
}

static int copies_pages(unsigned char *mem)
{
	uint64_t r[] = { (uintptr_t)mem, 4 * PAGE, (uintptr_t)mem + 6 * PAGE, 2 * PAGE };

	if (exclusive(mem) || exclusive(mem + 6 * PAGE))
		return 1; /* the fork shares them until it writes */
	if (set_ranges(r, 2) < 0)
		return 3;
	pc_prefault_run();
	for (int i = 0; i < 8; i++) {
		if (exclusive(mem + i * PAGE) != (i < 4 || i >= 6))
			return 10 + i;
	}
	for (size_t i = 0; i < 8 * PAGE; i++) {
		if (mem[i] != pattern(i))
			return 2;
	}
	return 0;
}

static void prefault_copies_each_listed_page_and_changes_no_byte(void **state)
{
	(void)state;
	passes_in_child(copies_pages, 8, true);
}

static int skips_bad_runs(unsigned char *mem)
{
	/* page 0 read-only, page 1 unmapped, page 2 PROT_NONE, page 3 fine;
	 * the last run starts at page 2: its fault skips the rest of it */
	uint64_t r[] = { (uintptr_t)mem,
			 PAGE,
			 (uintptr_t)mem + PAGE,
			 PAGE,
			 (uintptr_t)mem + 2 * PAGE,
			 PAGE,
			 (uintptr_t)mem + 3 * PAGE,
			 PAGE,
			 (uintptr_t)mem + 2 * PAGE,
			 2 * PAGE };
	struct sigaction segv, bus, segv_before, bus_before;

	if (mprotect(mem, PAGE, PROT_READ) < 0 || munmap(mem + PAGE, PAGE) < 0 ||
	    mprotect(mem + 2 * PAGE, PAGE, PROT_NONE) < 0)
		return 1;
	if (set_ranges(r, 5) < 0 || sigaction(SIGSEGV, NULL, &segv_before) < 0 ||
	    sigaction(SIGBUS, NULL, &bus_before) < 0)
		return 5;
	pc_prefault_run();
	if (!exclusive(mem + 3 * PAGE) || mem[3 * PAGE] != 0x5a)
		return 2; /* the run after the faulting ones was still copied */
	if (exclusive(mem))
		return 3;
	/* the handlers as they were */
	if (sigaction(SIGSEGV, NULL, &segv) < 0 || sigaction(SIGBUS, NULL, &bus) < 0 ||
	    segv.sa_handler != segv_before.sa_handler || bus.sa_handler != bus_before.sa_handler)
		return 4;
	return 0;
}

static void prefault_skips_pages_gone_or_not_writable(void **state)
{
	(void)state;
	passes_in_child(skips_bad_runs, 4, false);
}

/* A private file mapping past the file's end: its pages raise SIGBUS. */
static int skips_pages_past_eof(unsigned char *mem)
{
	char path[] = "/tmp/pycell-prefault-XXXXXX";
	int fd = mkstemp(path);
	unsigned char *map;
	uint64_t r[4];

	if (fd < 0)
		return 1;
	unlink(path);
	if (ftruncate(fd, PAGE) < 0 ||
	    (map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		return 2;
	close(fd);
	r[0] = (uintptr_t)map + PAGE, r[1] = PAGE; /* past the end: SIGBUS */
	r[2] = (uintptr_t)mem, r[3] = PAGE;
	if (set_ranges(r, 2) < 0)
		return 3;
	pc_prefault_run();
	return exclusive(mem) && mem[0] == 0x5a ? 0 : 4;
}

static void prefault_skips_pages_past_a_files_end(void **state)
{
	(void)state;
	passes_in_child(skips_pages_past_eof, 1, false);
}

static void prefault_refuses_ranges_off_page_boundaries(void **state)
{
	uint64_t unaligned[] = { 4096 + 8, 4096 }, odd_len[] = { 4096, 100 }, wraps[] = { ~0ULL - 4095, 8192 },
		 fine[] = { 4096, 8192 };

	(void)state;
	assert_int_equal(set_ranges(unaligned, 1), -1);
	assert_int_equal(set_ranges(odd_len, 1), -1);
	assert_int_equal(set_ranges(wraps, 1), -1);
	assert_int_equal(set_ranges(fine, 1), 0);
	assert_int_equal(set_ranges(fine, 0), 0); /* empty again */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prefault_copies_each_listed_page_and_changes_no_byte),
		cmocka_unit_test(prefault_skips_pages_gone_or_not_writable),
		cmocka_unit_test(prefault_skips_pages_past_a_files_end),
		cmocka_unit_test(prefault_refuses_ranges_off_page_boundaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
