/* Host-side modules pycell-init shares verbatim: the warm job process
 * (zygote.c) enforces the same Landlock ruleset as a cold job's sandbox
 * child (landlock.c), with the same error type; pid 1 reads the same clock
 * as the supervisor (util.c's now_ns). All plain syscalls, no allocation,
 * no libraries. */
#define _GNU_SOURCE
#include "../error.c"
#include "../landlock.c"
#include "../util.c"
