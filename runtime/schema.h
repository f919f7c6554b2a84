/* output_schema: the JSON-Schema subset a job may ask its result to
 * satisfy (DESIGN.md section 3): type, properties, required, enum, minimum,
 * maximum, items, plus additionalProperties (boolean) and the annotations
 * title/description/$schema. Anything else is refused when the job is
 * parsed, so a schema never silently checks less than it says. */
#ifndef PYCELL_SCHEMA_H
#define PYCELL_SCHEMA_H

#include <json-c/json.h>
#include <stddef.h>

struct pc_schema_error {
	char path[256];	  /* "$.metrics.rate" */
	char reason[256]; /* "expected number" */
};

/* Is schema itself well formed? 0, or -1 with e->path inside the schema
 * and e->reason ("unsupported keyword 'pattern'"). */
int pc_schema_check(json_object *schema, struct pc_schema_error *e);
/* Does value satisfy schema? 0, or -1 with the first failing path. */
int pc_schema_validate(json_object *schema, json_object *value, struct pc_schema_error *e);

#endif
