#include "joblimits.h"

#include <string.h>

#define MiB (1024LL * 1024)

/* Compiled-in defaults: the last step of the precedence chain (DESIGN.md
 * section 4). Ceilings keep every value inside what the kernel and this
 * runtime can represent safely. */
const struct pc_limit_info pc_limit_table[PC_LIM_COUNT] = {
	[PC_LIM_WALL_MS] = { "wall_ms", 1, 24LL * 3600 * 1000, { 10000, 300000 } },
	[PC_LIM_CPU_MS] = { "cpu_ms", 1, 24LL * 3600 * 1000, { 10000, 300000 } },
	[PC_LIM_MEMORY_MB] = { "memory_mb", 16, 1024 * 1024, { 256, 4096 } },
	[PC_LIM_PIDS] = { "pids", 4, 65536, { 64, 1024 } },
	[PC_LIM_STDOUT_BYTES] = { "stdout_bytes", 0, 1024 * MiB, { MiB, 16 * MiB } },
	[PC_LIM_STDERR_BYTES] = { "stderr_bytes", 0, 1024 * MiB, { MiB, 16 * MiB } },
	[PC_LIM_TMPFS_MB] = { "tmpfs_mb", 1, 64 * 1024, { 64, 1024 } },
	[PC_LIM_FILE_BYTES] = { "file_bytes", 1, 1024 * 1024 * MiB, { 16 * MiB, 1024 * MiB } },
	/* cpu.max / cfs_quota_us: percent of one core per period (100 = 1 cpu). */
	[PC_LIM_CPU_PERCENT] = { "cpu_percent", 1, 100 * 1024, { 100, 400 } },
};

int pc_limit_index(const char *name)
{
	for (int i = 0; i < PC_LIM_COUNT; i++) {
		if (strcmp(pc_limit_table[i].name, name) == 0)
			return i;
	}
	return -1;
}
