/* `pycell serve`: warm mode behind HTTP/1.1 on a Unix socket (serve.c). */
#ifndef PYCELL_SERVE_H
#define PYCELL_SERVE_H

int pc_cmd_serve(int argc, char **argv);
/* `pycell run --server SOCKET [JOB.json|-]` (serve_client.c). */
int pc_cmd_run_server(const char *sock, const char *job_path);

#endif
