/* `pycell serve`: warm mode behind HTTP/1.1 on a Unix socket (serve.c). */
#ifndef PYCELL_SERVE_H
#define PYCELL_SERVE_H

int pc_cmd_serve(int argc, char **argv);
/* `pycell run --server SOCKET [JOB.json|-]` (serve_client.c). */
int pc_cmd_run_server(const char *sock, const char *job_path);
/* POSTs body to target on the server at sock: *http is the answer's status,
 * *resp the whole answer (malloc'd), *resp_body its body. Returns 0, the
 * connect's -errno when nobody answers on sock, -EBADMSG for no answer. */
int pc_serve_request(const char *sock, const char *target, const char *body, size_t len, int *http, char **resp,
		     char **resp_body);

struct pc_cli_common;
struct pc_zygote;
/* POST /v1/audit (serve_audit.c): runs the audit warm against this server's
 * policy and rootfs, `import os` through pool. Returns the answer's body
 * (malloc'd; NULL: out of memory) and its HTTP status in *http. */
char *pc_serve_audit(const struct pc_cli_common *c, struct pc_zygote *pool, const char *method, size_t body_len,
		     int *http);

#endif
