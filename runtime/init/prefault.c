/* Warm mode: the zygote's pages a job writes, copied ahead.
 *
 * A job process is a fork of the zygote: every zygote page it writes is
 * copied on its first write, one page fault each (~450 for the json job,
 * most of them the interpreter's own first steps: its allocator's pools,
 * reference counts, the type cache). Which pages those are hardly depends
 * on the job, so the zygote learns them once from a probe (pycell_warm.py:
 * a fork that runs the shim's steps on a constant job and reads which of
 * its pages are its own, /proc/self/pagemap "exclusively mapped"), and each
 * spare's job process copies them with MADV_POPULATE_WRITE while it waits
 * for its job: off the job's path, and one system call per run of pages
 * instead of a fault per page. It changes no byte (madvise(2)), so a wrong
 * list costs time, never correctness; a range no longer mapped fails with
 * ENOMEM and is skipped. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "prefault.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

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
	n_ranges = n;
	return 0;
}

void pc_prefault_run(void)
{
	for (size_t i = 0; i < n_ranges; i++)
		madvise((void *)(uintptr_t)ranges[i].start, (size_t)ranges[i].len, MADV_POPULATE_WRITE);
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
