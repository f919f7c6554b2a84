#define _GNU_SOURCE
#include "run.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image.h"
#include "exec_filter.h"
#include "jsonutil.h"
#include "sandbox.h"
#include "util.h"
#include "zygote.h"

#define SHIM_MAIN PC_SANDBOX_SHIM "/pycell_shim.py"

static char *const job_env[] = {
	"PATH=/usr/bin",
	"HOME=" PC_WORKDIR,
	"TMPDIR=/tmp",
	"LANG=C.UTF-8",
	"PYTHONIOENCODING=utf-8",
	/* Scientific libraries size their thread pools to the machine;
	 * one thread each keeps `import numpy` under the pids cap. */
	"OPENBLAS_NUM_THREADS=1",
	"OMP_NUM_THREADS=1",
	"MKL_NUM_THREADS=1",
	NULL,
};

char *const *pc_run_job_env(void)
{
	return job_env;
}

void pc_run_trace(struct pc_run *r, const char *phase, bool ok, long long since_ns)
{
	if (r->n_trace >= PC_MAX_TRACE)
		return;
	r->trace[r->n_trace++] = (struct pc_trace){ phase, ok, (double)(now_ns() - since_ns) / 1e6 };
}

static int memfd_with(const char *name, const char *data, size_t len, struct pc_error *err)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r;

	if (fd < 0)
		return pc_error_set(err, errno, "memfd_create %s", name);
	if ((r = write_all(fd, data, len)) < 0) {
		close(fd);
		return pc_error_set(err, -r, "fill memfd %s", name);
	}
	/* Sealed: the job may read its input, never change what we wrote. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return pc_error_set(err, errno, "seal memfd %s", name);
	}
	return fd;
}

/* The shim's bootstrap document: code, input, the policy's Python layer. */
static char *bootstrap_json(const struct pc_run *r)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *v;
	const char *why;
	const char *rest;
	char *s;

	json_object_object_add(o, "code", json_object_new_string_len(r->job->code, (int)r->job->code_len));
	json_object_object_add(o, "mode", json_object_new_string(r->job->mode));
	json_object_object_add(o, "has_input", json_object_new_boolean(r->job->input_json != NULL));
	if (!r->job->input_json)
		json_object_object_add(o, "input", NULL);
	v = r->policy->python_json ? pc_json_parse(r->policy->python_json, strlen(r->policy->python_json), &why) : NULL;
	json_object_object_add(o, "python", v ? v : json_object_new_object());
	json_object_object_add(o, "checks", json_object_new_boolean(r->policy->python_checks));
	v = r->job->imports_json ? pc_json_parse(r->job->imports_json, strlen(r->job->imports_json), &why) : NULL;
	json_object_object_add(o, "imports", v ? v : json_object_new_array());
	v = r->job->packages_json ? pc_json_parse(r->job->packages_json, strlen(r->job->packages_json), &why) : NULL;
	json_object_object_add(o, "packages", v ? v : json_object_new_array());
	rest = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (!r->job->input_json)
		return strdup(rest);
	/* The input is already JSON text (job.c serialised it): spliced in as
	 * the first member rather than parsed into a tree and printed again,
	 * which for a large input doubled the supervisor's memory and time. */
	if (asprintf(&s, "{\"input\":%s,%s", r->job->input_json, rest + 1) < 0)
		return NULL;
	return s;
}

static int prepare_config(struct pc_run *r, struct pc_sandbox_config *cfg, int *in_fd, int *boot_fd)
{
	_cleanup_free_ char *boot = bootstrap_json(r);
	const char *input = r->job->input_json ? r->job->input_json : "";
	int fd;

	if (!boot)
		return pc_error_set(&r->setup_error, ENOMEM, "bootstrap document");
	if ((fd = memfd_with("pycell-input", input, strlen(input), &r->setup_error)) < 0)
		return fd;
	*in_fd = fd;
	if ((fd = memfd_with("pycell-bootstrap", boot, strlen(boot), &r->setup_error)) < 0)
		return fd;
	*boot_fd = fd;

	cfg->mounts = (struct pc_mount_plan){
		.rootfs = r->rootfs,
		.init_path = r->paths->init,
		.shim_dir = r->paths->shim,
		.probe = r->ablation && r->paths->probe[0] ? r->paths->probe : NULL,
		.tmpfs_bytes = (unsigned long long)r->limits[PC_LIM_TMPFS_MB] * 1024 * 1024,
		.tmpfs_inodes = 16384,
		.uid = PC_SANDBOX_UID,
		.gid = PC_SANDBOX_UID,
	};
	cfg->rootless = geteuid() != 0;
	cfg->host_uid = geteuid(); /* as root: a uid lease, set by pc_resources_prepare */
	cfg->host_gid = getegid();
	cfg->files = r->job->files;
	cfg->n_files = r->job->n_files;
	cfg->stdin_fd = *in_fd;
	cfg->bootstrap_fd = *boot_fd;
	cfg->envp = job_env;
	return 0;
}

int pc_run_job(struct pc_run *r)
{
	/* pycell-init hosts the interpreter (runtime/init/embed.c): isolated
	 * config, C audit hook, exec filter stacked before Python starts. */
	static char *argv_shim[] = { PC_SANDBOX_INIT, "--embed", SHIM_MAIN, NULL };
	/* A crashing job never reaches the host's core_pattern helper. */
	static const struct pc_rlimit no_core = { RLIMIT_CORE, { 0, 0 } };
	_cleanup_close_ int in_fd = -1, boot_fd = -1, filter_fd = -1;
	struct pc_sandbox_config cfg = { 0 };
	struct pc_seccomp sc = { 0 };
	struct pc_sandbox sb;
	struct pc_image img;
	char img_root[64];
	long long t0 = now_ns(), deadline;
	bool from_init;
	int ret;

	pc_sandbox_init(&sb);
	pc_resources_init(&r->rc);
	r->rc.cg_tree = r->zygote && r->zygote->cg.clone_fd >= 0 ? &r->zygote->cg : NULL;
	r->rc.zygote_uid = r->zygote != NULL;
	r->rc.cg_parked = r->cg_parked;
	r->rc.signals_ignored = r->signals_ignored;
	pc_job_effective_limits(r->job, r->policy, r->limits);
	pc_image_init(&img);
	/* Warm mode: the zygote holds the rootfs, exec filter and policy filter. */
	if (!r->zygote && (ret = pc_image_prepare_rootfs(&img, r->rootfs, &r->setup_error)) < 0)
		goto setup_failed;
	if ((ret = prepare_config(r, &cfg, &in_fd, &boot_fd)) < 0)
		goto setup_failed;
	/* pycell-init embeds Python 3.X: the rootfs must be the same release.
	 * Then the exec filter its job process stacks. */
	if (!r->zygote && ((ret = pc_embed_check_rootfs(pc_image_root(&img, r->rootfs, img_root, sizeof(img_root)),
							&r->setup_error)) < 0 ||
			   (ret = filter_fd = pc_exec_filter_prepare(&r->setup_error)) < 0))
		goto setup_failed;
	cfg.exec_filter_fd = filter_fd;
	pc_image_plan(&img, &cfg.mounts);
	cfg.argv = r->ablation ? r->ablation_argv : argv_shim;
	if ((ret = pc_resources_prepare(&r->rc, r->limits, r->policy->require_cgroups, &cfg, &r->setup_error)) < 0)
		goto setup_failed;
	if (cfg.n_rlimits == 0)
		cfg.rlimits = &no_core, cfg.n_rlimits = 1;
	if (!r->zygote && r->policy->seccomp[0] &&
	    (ret = pc_seccomp_prepare(&sc, r->policy->seccomp, &r->setup_error)) < 0) {
		pc_error_wrap(&r->setup_error, "seccomp");
		goto setup_failed;
	}
	cfg.seccomp = sc.enabled ? &sc : NULL;
	r->seccomp_insns = r->zygote ? r->zygote->seccomp_insns : sc.enabled ? sc.prog.len : 0;
	r->seccomp_cached = r->zygote ? r->zygote->seccomp_cached : sc.cached;
	pc_landlock_prepare(&r->landlock);
	cfg.landlock = &r->landlock;
	ret = r->zygote ? pc_zygote_start_job(r->zygote, &cfg, &sb, &r->setup_error)
			: pc_sandbox_start(&cfg, &sb, &r->setup_error);
	if (ret < 0)
		goto setup_failed;
	pc_image_close(&img); /* the job's mount namespace holds the image now */
	r->setup_ns = now_ns() - t0;
	/* pid 1's clock reading, kept only if it falls inside our setup. */
	if (sb.forked_ns > t0 && sb.forked_ns - t0 < r->setup_ns)
		r->sandbox_ns = sb.forked_ns - t0;
	pc_run_trace(r, "setup", true, t0);
	if (r->on_started)
		r->on_started(r, r->on_started_arg);

	t0 = now_ns();
	deadline = t0 + r->limits[PC_LIM_WALL_MS] * 1000000LL;
	pc_stream_init(&r->out, steal_fd(&sb.out_fd), (size_t)r->limits[PC_LIM_STDOUT_BYTES], r->passthrough ? 1 : -1);
	pc_stream_init(&r->err, steal_fd(&sb.err_fd), (size_t)r->limits[PC_LIM_STDERR_BYTES], r->passthrough ? 2 : -1);
	pc_stream_init(&r->res, steal_fd(&sb.result_fd), r->policy->max_result_bytes, -1);
	ret = pc_pump(&sb, &r->out, &r->err, &r->res, deadline,
		      &(struct pc_pump_watch){ pc_resources_watch, &r->rc, PC_CPU_POLL_MS, r->rc.signal_fd }, &r->pump,
		      &r->setup_error);
	if (ret == 0 && (ret = r->zygote ? pc_zygote_reap(&sb, &r->job_status, &from_init)
					 : pc_sandbox_reap(&sb, &r->job_status, &from_init)) == 0)
		r->have_status = true;
	else if (ret < 0 && r->setup_error.msg[0] == '\0')
		pc_error_set(&r->setup_error, -ret, "reap sandbox");
	r->wall_ns = now_ns() - t0;
	pc_run_trace(r, "execute", ret == 0, t0);
	pc_sandbox_destroy(&sb);
	pc_resources_collect(&r->rc);
	if (!r->defer_release)
		pc_resources_release(&r->rc);
	pc_seccomp_free(&sc);
	return ret;

setup_failed:
	r->setup_failed = true;
	r->setup_ns = now_ns() - t0;
	pc_run_trace(r, "setup", false, t0);
	pc_image_close(&img);
	pc_sandbox_destroy(&sb);
	pc_resources_release(&r->rc);
	pc_seccomp_free(&sc);
	return ret;
}

void pc_run_free(struct pc_run *r)
{
	pc_stream_free(&r->out);
	pc_stream_free(&r->err);
	pc_stream_free(&r->res);
}
