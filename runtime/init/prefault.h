/* Warm mode: the zygote's pages a job writes, copied ahead (prefault.c). */
#ifndef PYCELL_INIT_PREFAULT_H
#define PYCELL_INIT_PREFAULT_H

#include <stddef.h>

/* data: {u64 start, u64 len}... as the probe found them; -1 if malformed. */
int pc_prefault_set(const void *data, size_t len);
/* In the probe (a fork of the zygote, never the zygote itself): finds the
 * pages it has written since the fork; returns their runs' count, or -1.
 * pc_prefault_ranges() then gives them in pc_prefault_set()'s form. */
int pc_prefault_scan(void);
const void *pc_prefault_ranges(size_t *len);
/* In a spare's job process, before its job: copies those pages now. */
void pc_prefault_run(void);

#endif
