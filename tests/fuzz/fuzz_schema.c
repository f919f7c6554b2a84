/* libFuzzer target: the output_schema validator. The input is split at the
 * first NUL into a schema and a value (both JSON; a missing value is tried
 * as null, 0, "", [] and {}). pc_schema_validate only runs on schemas
 * pc_schema_check accepted, as in the runtime (job.c checks, result.c
 * validates). Both must fill in a reason when they refuse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void validate(json_object *schema, json_object *value)
{
	struct pc_schema_error e;

	memset(&e, 0, sizeof(e));
	if (pc_schema_validate(schema, value, &e) < 0 && !e.reason[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t slen = nul ? (size_t)(nul - data) : size;
	const char *why = NULL;
	struct pc_schema_error e;
	json_object *schema = pc_json_parse((const char *)data, slen, &why);

	if (!schema)
		return 0;
	memset(&e, 0, sizeof(e));
	if (pc_schema_check(schema, &e) < 0) {
		if (!e.reason[0])
			abort();
		json_object_put(schema);
		return 0;
	}
	if (nul) {
		json_object *value = pc_json_parse((const char *)nul + 1, size - slen - 1, &why);

		validate(schema, value); /* NULL: JSON null or unparsable, both fine */
		json_object_put(value);
	} else {
		static const char *const vals[] = { "0", "1.5", "\"\"", "[]", "{}", "true" };

		validate(schema, NULL);
		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			json_object *v = json_tokener_parse(vals[i]);

			validate(schema, v);
			json_object_put(v);
		}
	}
	json_object_put(schema);
	return 0;
}
