/* pycell-init --zygote: the warm pool's interpreter host (zygote.c). */
#ifndef PYCELL_INIT_ZYGOTE_H
#define PYCELL_INIT_ZYGOTE_H

struct sock_fprog;

/* Never returns: runs SCRIPT in the embedded interpreter with the
 * _pycell_zygote module built in. */
void pc_zygote_main(const char *script, const struct sock_fprog *filter) __attribute__((noreturn));

#endif
