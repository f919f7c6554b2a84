/* libFuzzer target: pc_job_parse on arbitrary bytes, under the built-in
 * policy and under policy/default.json (different caps and checks). Any
 * accepted job must also yield effective limits inside the policy's range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pc_policy pols[2];
static int n_pols;

static void init(void)
{
	struct pc_error err;

	if (n_pols)
		return;
	memset(pols, 0, sizeof(pols));
	if (pc_policy_load(&pols[0], NULL, NULL, &err) < 0)
		abort();
	n_pols = 1;
	if (pc_policy_load(&pols[1], "policy/default.json", NULL, &err) == 0)
		n_pols = 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	for (int i = 0; i < n_pols; i++) {
		struct pc_job job;
		struct pc_job_error je;
		long long lim[PC_LIM_COUNT];

		memset(&job, 0, sizeof(job));
		memset(&je, 0, sizeof(je));
		if (pc_job_parse((const char *)data, size, &pols[i], &job, &je) == 0) {
			if (!job.code || strlen(job.code_sha256) != 64)
				abort();
			pc_job_effective_limits(&job, &pols[i], lim);
			for (int k = 0; k < PC_LIM_COUNT; k++)
				if (lim[k] > pols[i].limits[k].max && pols[i].limits[k].max > 0)
					abort();
			(void)pc_job_execution_mode(&job);
		} else if (!je.code || !je.reason[0]) {
			abort(); /* a refusal must say why */
		}
		pc_job_free(&job);
	}
	return 0;
}
