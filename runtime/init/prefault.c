/* Warm mode: the zygote's pages a job writes, copied ahead.
 *
 * A job process is a fork of the zygote: every zygote page it writes is
 * copied on its first write, one page fault each (~450 for the json job,
 * most of them the interpreter's own first steps: its allocator's pools,
 * reference counts, the type cache). Which pages those are hardly depends
 * on the job, so the zygote learns them once from a probe (pycell_warm.py:
 * a fork that runs the shim's steps on a constant job and reads which of
 * its pages are its own, /proc/self/pagemap "exclusively mapped"), and each
 * spare's job process copies them while it waits for its job: off the
 * job's path. It writes each page with an atomic OR of 0, which changes no
 * byte, so a wrong list costs time and copied memory (charged like any
 * other copy), never correctness; a page no longer
 * mapped writable (the zygote freed or protected it after the probe)
 * faults, and the SIGSEGV/SIGBUS handler skips the rest of its run. A
 * write fault per page costs ~1 us less than the MADV_POPULATE_WRITE per
 * run it replaced (~160 runs, most of one or two pages, for the json job's
 * ~250 pages). */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "prefault.h"

#define MAX_RANGES 4096

static struct {
	uint64_t start, len;
} ranges[MAX_RANGES];
static size_t n_ranges;

int pc_prefault_set(const void *data, size_t len)
{
	size_t n = len / sizeof(ranges[0]);

	if (len % sizeof(ranges[0]) || n > MAX_RANGES)
		return -1;
	memcpy(ranges, data, len);
	for (size_t i = 0; i < n; i++) {
		if (ranges[i].start % 4096 || ranges[i].len % 4096 ||
		    ranges[i].start + ranges[i].len < ranges[i].start) {
			n_ranges = 0;
			return -1;
		}
	}
	n_ranges = n;
	return 0;
}

static sigjmp_buf skip_run;
/* Static: set after the sigsetjmp, read after a siglongjmp. */
static struct sigaction old_segv, old_bus;

static void on_fault(int sig)
{
	(void)sig;
	siglongjmp(skip_run, 1);
}

void pc_prefault_run(void)
{
	/* SA_NODEFER: left by siglongjmp without restoring a mask, the
	 * handler must not leave SIGSEGV blocked (a blocked SIGSEGV kills). */
	struct sigaction sa = { .sa_handler = on_fault, .sa_flags = SA_NODEFER };
	volatile size_t i = 0;
	volatile bool armed = false;

	if (sigsetjmp(skip_run, 0))
		i++; /* run i faulted: on with the next */
	if (!armed) {
		if (sigaction(SIGSEGV, &sa, &old_segv) < 0)
			return;
		if (sigaction(SIGBUS, &sa, &old_bus) < 0) {
			sigaction(SIGSEGV, &old_segv, NULL);
			return;
		}
		armed = true;
	}
	for (; i < n_ranges; i++) {
		volatile char *p = (volatile char *)(uintptr_t)ranges[i].start, *end = p + ranges[i].len;

		/* volatile: an atomic OR of 0 must stay a write (a compiler may
		 * turn a plain one into a load, which copies nothing) */
		for (; p < end; p += 4096)
			__atomic_fetch_or(p, 0, __ATOMIC_RELAXED);
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
}

#define PM_PRESENT   (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56)

/* One mapping's written pages, appended to ranges[] (coalesced). */
static void scan_vma(int pagemap, uint64_t lo, uint64_t hi)
{
	uint64_t e[512];

	for (uint64_t a = lo; a < hi;) {
		size_t want = (size_t)((hi - a) / 4096 < 512 ? (hi - a) / 4096 : 512);
		ssize_t n = pread(pagemap, e, want * 8, (off_t)(a / 4096 * 8));

		if (n <= 0)
			return;
		for (size_t i = 0; i < (size_t)n / 8; i++, a += 4096) {
			if ((e[i] & (PM_PRESENT | PM_EXCLUSIVE)) != (PM_PRESENT | PM_EXCLUSIVE))
				continue;
			if (n_ranges && ranges[n_ranges - 1].start + ranges[n_ranges - 1].len == a)
				ranges[n_ranges - 1].len += 4096;
			else if (n_ranges < MAX_RANGES)
				ranges[n_ranges].start = a, ranges[n_ranges++].len = 4096;
		}
	}
}

int pc_prefault_scan(void)
{
	char line[512];
	FILE *maps;
	int pagemap;

	/* Never the zygote (pid 1 of its sandbox): its memory stays undumpable
	 * (zygote.c). The probe's is its own copy, and only its owner may read
	 * a pagemap that is (proc(5)). */
	if (getpid() == 1 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -1;
	maps = fopen("/proc/self/maps", "re");
	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	n_ranges = 0;
	while (maps && pagemap >= 0 && fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && perms[1] == 'w' && perms[3] == 'p')
			scan_vma(pagemap, lo, hi);
	}
	if (maps)
		fclose(maps);
	if (pagemap >= 0)
		close(pagemap);
	return (int)n_ranges;
}

const void *pc_prefault_ranges(size_t *len)
{
	*len = n_ranges * sizeof(ranges[0]);
	return ranges;
}
