/* `pycell serve`: warm mode behind HTTP/1.1 on a Unix socket (serve.c). */
#ifndef PYCELL_SERVE_H
#define PYCELL_SERVE_H

int pc_cmd_serve(int argc, char **argv);

#endif
