/* The per-job limits, their names in JSON, and compiled-in defaults. */
#ifndef PYCELL_JOBLIMITS_H
#define PYCELL_JOBLIMITS_H

enum pc_limit {
	PC_LIM_WALL_MS,
	PC_LIM_CPU_MS,
	PC_LIM_MEMORY_MB,
	PC_LIM_PIDS,
	PC_LIM_STDOUT_BYTES,
	PC_LIM_STDERR_BYTES,
	PC_LIM_TMPFS_MB,
	PC_LIM_FILE_BYTES,
	PC_LIM_CPU_PERCENT, /* cgroup cpu bandwidth: 100 = one full core */
	PC_LIM_COUNT
};

struct pc_limit_range {
	long long def; /* used when the job says nothing */
	long long max; /* hard ceiling; job values are clamped to it */
};

struct pc_limit_info {
	const char *name;
	long long min;	   /* smallest value a job or policy may ask for */
	long long ceiling; /* largest value any policy may allow */
	struct pc_limit_range builtin;
};

extern const struct pc_limit_info pc_limit_table[PC_LIM_COUNT];

/* Index of a limit by its JSON name, or -1. */
int pc_limit_index(const char *name);

#endif
