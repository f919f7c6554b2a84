/* POST /v1/audit on `pycell serve`: the isolation audit, run warm.
 * Runs in the connection's handler (serve.c forks one per connection):
 * the evidence job through a one-off zygote of this server's policy and
 * rootfs, `import os` through the pool zygote the handler was given
 * (audit_run.c). The answer is the document `pycell audit --format json`
 * prints, with "mode": "warm"; `pycell audit --server` reads it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "jsonutil.h"
#include "serve.h"
#include "util.h"

static char *error_body(const char *code, const char *message)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *e = json_object_new_object();

	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(o, "error", e);
	return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

char *pc_serve_audit(const struct pc_cli_common *c, struct pc_zygote *pool, const char *method, size_t body_len,
		     int *http)
{
	struct pc_error err = { 0 };
	_cleanup_free_ struct pc_audit *a = calloc(1, sizeof(*a)); /* ~34 KiB: not on the stack */
	_cleanup_json_ json_object *doc = NULL;
	char why[PC_ERROR_MSG + 64];

	*http = strcmp(method, "POST") != 0 ? 405 : body_len ? 400 : !a ? 500 : 0;
	if (*http)
		return error_body(*http == 405	 ? "HTTP_405"
				  : *http == 400 ? "HTTP_400"
						 : "HTTP_500",
				  *http == 405	 ? "use POST"
				  : *http == 400 ? "send no body"
						 : "out of memory");
	if (pc_audit_run(&c->policy, &c->paths, c->rootfs, pool, a, &err) < 0) {
		*http = 500;
		return error_body("AUDIT_FAILED", pc_error_text(&err, why, sizeof(why)));
	}
	*http = 200;
	doc = pc_audit_document(a, "warm", c->policy.name, pc_audit_base_name(c->rootfs));
	return strdup(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}
