/* libFuzzer target: policy parsing and merging. The input is split at the
 * first NUL: the part before is the policy file, the part after (if any) is
 * the system config layered underneath it. The policy may "extends" a fixed
 * base.json in the same directory, so the merge path is reached too. Every
 * loaded policy must serialize (`pycell policy show`) to valid JSON with
 * each default at or below its max, and a refused one must hold no memory
 * (LeakSanitizer). pc_policy_load reads files, so the
 * bytes go to a private temp directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char pol_path[128], sys_path[128];

static const char base_json[] =
	"{\"name\":\"base\",\"limits\":{\"wall_ms\":{\"default\":1000,\"max\":5000},"
	"\"memory_mb\":{\"default\":64,\"max\":256}},"
	"\"python\":{\"checks\":true,\"allowed_imports\":[\"json\",\"math\"],\"denied_builtins\":[\"eval\"]}}";

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0)
		abort();
}

static void cleanup(void)
{
	static const char *const names[] = { "base.json", "policy.json", "config.json" };
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void init(void)
{
	char base[128];

	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/fuzz-policy.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	snprintf(base, sizeof(base), "%s/base.json", dir);
	write_file(base, base_json, sizeof(base_json) - 1);
	snprintf(pol_path, sizeof(pol_path), "%s/policy.json", dir);
	snprintf(sys_path, sizeof(sys_path), "%s/config.json", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_policy p;
	struct pc_error err;
	const uint8_t *nul = memchr(data, 0, size);
	size_t plen = nul ? (size_t)(nul - data) : size;

	init();
	write_file(pol_path, data, plen);
	if (nul)
		write_file(sys_path, nul + 1, size - plen - 1);
	memset(&p, 0, sizeof(p));
	memset(&err, 0, sizeof(err));
	if (pc_policy_load(&p, pol_path, nul ? sys_path : NULL, &err) == 0) {
		json_object *j = pc_policy_to_json(&p);
		const char *s = j ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN) : NULL;
		json_object *back = s ? json_tokener_parse(s) : NULL;

		if (!back)
			abort();
		for (int k = 0; k < PC_LIM_COUNT; k++)
			if (p.limits[k].def > p.limits[k].max)
				abort();
		json_object_put(back);
		json_object_put(j);
		pc_policy_free(&p);
	} else if (!err.msg[0]) {
		abort(); /* a refusal must say why */
	}
	/* A refused policy owns nothing (pc_policy_load frees it): not freeing
	 * it here lets LeakSanitizer check that on every refusal path. */
	if (nul)
		unlink(sys_path);
	return 0;
}
