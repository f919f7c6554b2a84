/* seccomp filter: the list file is parsed and compiled here, in the parent;
 * the child only hands the finished BPF to the kernel (bubblewrap, crun).
 *
 * List format (files in policy/seccomp/):
 *   {"description": "...",
 *    "rules": [{"names": ["read", ...], "reason": "one line",
 *               "args": [{"arg": 1, "op": "masked_eq", "mask": 4294967295, "value": 21505}]}]}
 * Every rule allows; the conditions inside one rule are ANDed (libseccomp),
 * so alternatives are separate rules. Numbers may be JSON integers or "0x.."
 * strings. The never-allowed table below is not up to a list. */
#define _GNU_SOURCE
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf_cache.h"
#include "fileio.h"
#include "jsonutil.h"
#include "sha256.h"
#include "sync.h"
#include "util.h"

#define MAX_LIST_BYTES (256 * 1024)
#define MAX_RULES      512
#define MAX_NAMES      512

static inline void cleanup_seccompp(scmp_filter_ctx *c)
{
	if (*c)
		seccomp_release(*c);
}
#define _cleanup_seccomp_ __attribute__((cleanup(cleanup_seccompp)))

/* Never allowed, whatever a list says; a call ends the job with
 * SECURITY_ERROR naming it. Names libseccomp does not know are skipped:
 * a call it cannot name cannot be on an allowlist either. */
static const struct {
	const char *name;
	const char *reason;
} never[] = {
	{ "unshare", "a new user namespace hands back a full capability set" },
	{ "setns", "entering another namespace leaves the sandbox" },
	{ "mount", "the mount API rewrites what the job can see" },
	{ "umount2", "unmounting could uncover what a mount hides" },
	{ "pivot_root", "the mount API" },
	{ "fsopen", "the new mount API (5.2)" },
	{ "fsconfig", "the new mount API (5.2)" },
	{ "fsmount", "the new mount API (5.2)" },
	{ "fspick", "the new mount API (5.2)" },
	{ "open_tree", "clones mount trees" },
	{ "move_mount", "the new mount API (5.2)" },
	{ "mount_setattr", "changes mount flags, read-only included" },
	{ "ptrace", "debugging other processes (pid 1 included)" },
	{ "process_vm_readv", "reads another process's memory" },
	{ "process_vm_writev", "writes another process's memory" },
	{ "kcmp", "compares kernel objects across processes: an address oracle" },
	{ "pidfd_getfd", "steals descriptors from another process" },
	{ "bpf", "eBPF: a long line of verifier CVEs" },
	{ "perf_event_open", "perf: side channels and a long CVE history" },
	{ "userfaultfd", "stalls the kernel on page faults, a staple of race exploits" },
	{ "io_uring_setup", "io_uring bypasses seccomp for the operations it runs" },
	{ "io_uring_enter", "io_uring" },
	{ "io_uring_register", "io_uring" },
	{ "keyctl", "keyctl can establish system-wide persistent memory" },
	{ "add_key", "the kernel keyring" },
	{ "request_key", "the kernel keyring" },
	{ "init_module", "kernel modules" },
	{ "finit_module", "kernel modules" },
	{ "delete_module", "kernel modules" },
	{ "kexec_load", "replaces the running kernel" },
	{ "kexec_file_load", "replaces the running kernel" },
	{ "reboot", "reboots the host" },
	{ "swapon", "host swap" },
	{ "swapoff", "host swap" },
	{ "acct", "process accounting to a file" },
	{ "quotactl", "filesystem quotas" },
	{ "quotactl_fd", "filesystem quotas" },
	{ "syslog", "the kernel log leaks addresses" },
	{ "settimeofday", "sets the host clock" },
	{ "clock_settime", "sets the host clock" },
	{ "clock_adjtime", "adjusts the host clock" },
	{ "adjtimex", "adjusts the host clock" },
	{ "open_by_handle_at", "opens files by handle, outside the mount tree (the 'shocker' escape)" },
	{ "splice", "zero-copy pipe plumbing behind Dirty Pipe (CVE-2022-0847)" },
	{ "vmsplice", "vmsplice: CVE-2008-0600 and friends" },
	{ "tee", "pipe duplication, the splice family" },
};

/* The CLONE_NEW* bits clone(2) accepts in its flags (not CLONE_NEWTIME,
 * whose bit is the exit signal's there). */
static const unsigned long clone_new[] = { CLONE_NEWNS,	  CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
					   CLONE_NEWUSER, CLONE_NEWPID,	   CLONE_NEWNET };

static bool is_never(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(never); i++) {
		if (strcmp(never[i].name, name) == 0)
			return true;
	}
	return false;
}

/* clone and ioctl carry never-allowed cases in their arguments, so a list
 * may allow them only under conditions. */
static bool needs_args(const char *name)
{
	return strcmp(name, "clone") == 0 || strcmp(name, "ioctl") == 0 || strcmp(name, "clone3") == 0 ||
	       strcmp(name, "personality") == 0 || strcmp(name, "socket") == 0;
}

static int map_rc(struct pc_error *err, int rc, const char *what, const char *name)
{
	return pc_error_set(err, -rc, "seccomp: %s '%s'", what, name);
}

static int fixed_rules(scmp_filter_ctx ctx, struct pc_error *err)
{
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(never); i++) {
		int nr = seccomp_syscall_resolve_name(never[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue;
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0)) < 0)
			return map_rc(err, rc, "add never-allowed rule", never[i].name);
	}
	/* Namespace creation through clone flags. */
	for (size_t i = 0; i < ARRAY_SIZE(clone_new); i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, clone_new[i], clone_new[i]));
		if (rc < 0)
			return map_rc(err, rc, "add never-allowed rule", "clone");
	}
	/* TIOCSTI pushes input into a terminal, TIOCLINUX reads/writes the
	 * console; the kernel takes cmd as 32 bits, so compare only those. */
	rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(ioctl), 1,
			      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCSTI));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(ioctl), 1,
				      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCLINUX));
	if (rc < 0)
		return map_rc(err, rc, "add never-allowed rule", "ioctl");
	/* clone3 hides its flags behind a pointer: ENOSYS makes glibc fall
	 * back to clone, whose flags are filtered above. */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
		return map_rc(err, rc, "add rule", "clone3");
	return 0;
}

static int json_u64(json_object *v, unsigned long long *out)
{
	const char *s;
	char *end;

	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		int64_t x = json_object_get_int64(v);
		if (errno == ERANGE || x < 0)
			return -1;
		*out = (unsigned long long)x;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	errno = 0;
	*out = strtoull(s, &end, 0);
	return (errno || end == s || *end || s[0] == '-') ? -1 : 0;
}

static const struct {
	const char *name;
	enum scmp_compare op;
} ops[] = {
	{ "eq", SCMP_CMP_EQ },
	{ "ne", SCMP_CMP_NE },
	{ "lt", SCMP_CMP_LT },
	{ "le", SCMP_CMP_LE },
	{ "gt", SCMP_CMP_GT },
	{ "ge", SCMP_CMP_GE },
	{ "masked_eq", SCMP_CMP_MASKED_EQ },
};

static int parse_arg(json_object *a, struct scmp_arg_cmp *c, const char *where, struct pc_error *err)
{
	static const char *const keys[] = { "arg", "op", "mask", "value" };
	json_object *v;
	unsigned long long n, mask = 0, val;
	const char *op;
	size_t i;

	if (!json_object_is_type(a, json_type_object))
		return pc_error_set(err, EINVAL, "%s: expected an object", where);
	json_object_object_foreach (a, key, unused) {
		(void)unused;
		for (i = 0; i < ARRAY_SIZE(keys) && strcmp(keys[i], key) != 0; i++)
			;
		if (i == ARRAY_SIZE(keys))
			return pc_error_set(err, EINVAL, "%s: unknown key '%s'", where, key);
	}
	if (!json_object_object_get_ex(a, "arg", &v) || json_u64(v, &n) < 0 || n > 5)
		return pc_error_set(err, EINVAL, "%s: 'arg' must be 0..5", where);
	c->arg = (unsigned)n;
	if (!json_object_object_get_ex(a, "op", &v) || !json_object_is_type(v, json_type_string))
		return pc_error_set(err, EINVAL, "%s: 'op' must be a string", where);
	op = json_object_get_string(v);
	for (i = 0; i < ARRAY_SIZE(ops) && strcmp(ops[i].name, op) != 0; i++)
		;
	if (i == ARRAY_SIZE(ops))
		return pc_error_set(err, EINVAL, "%s: unknown op '%s'", where, op);
	c->op = ops[i].op;
	if (!json_object_object_get_ex(a, "value", &v) || json_u64(v, &val) < 0)
		return pc_error_set(err, EINVAL, "%s: 'value' must be a non-negative number", where);
	if (c->op == SCMP_CMP_MASKED_EQ && (!json_object_object_get_ex(a, "mask", &v) || json_u64(v, &mask) < 0))
		return pc_error_set(err, EINVAL, "%s: masked_eq needs a 'mask'", where);
	c->datum_a = c->op == SCMP_CMP_MASKED_EQ ? mask : val;
	c->datum_b = c->op == SCMP_CMP_MASKED_EQ ? val : 0;
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, json_object *rule, size_t idx, const char *path, struct pc_error *err)
{
	static const char *const keys[] = { "names", "reason", "args" };
	struct scmp_arg_cmp cmp[6];
	json_object *names, *args = NULL, *reason;
	char where[PATH_MAX + 64];
	size_t n_args = 0, i;
	int r;

	snprintf(where, sizeof(where), "'%s': rules[%zu]", path, idx);
	if (!json_object_is_type(rule, json_type_object))
		return pc_error_set(err, EINVAL, "%s: expected an object", where);
	json_object_object_foreach (rule, key, unused) {
		(void)unused;
		for (i = 0; i < ARRAY_SIZE(keys) && strcmp(keys[i], key) != 0; i++)
			;
		if (i == ARRAY_SIZE(keys))
			return pc_error_set(err, EINVAL, "%s: unknown key '%s'", where, key);
	}
	/* The reason is not decoration: auditors read the list, not the BPF. */
	if (!json_object_object_get_ex(rule, "reason", &reason) || !json_object_is_type(reason, json_type_string) ||
	    json_object_get_string_len(reason) == 0)
		return pc_error_set(err, EINVAL, "%s: every rule needs a one-line 'reason'", where);
	if (!json_object_object_get_ex(rule, "names", &names) || !json_object_is_type(names, json_type_array) ||
	    json_object_array_length(names) == 0 || json_object_array_length(names) > MAX_NAMES)
		return pc_error_set(err, EINVAL, "%s: 'names' must be a non-empty array of syscall names", where);
	if (json_object_object_get_ex(rule, "args", &args)) {
		if (!json_object_is_type(args, json_type_array) || json_object_array_length(args) > 6)
			return pc_error_set(err, EINVAL, "%s: 'args' must be an array of at most 6 conditions", where);
		n_args = json_object_array_length(args);
		for (i = 0; i < n_args; i++) {
			if ((r = parse_arg(json_object_array_get_idx(args, i), &cmp[i], where, err)) < 0)
				return r;
		}
	}
	for (i = 0; i < json_object_array_length(names); i++) {
		json_object *nv = json_object_array_get_idx(names, i);
		const char *name;
		int nr;

		if (!json_object_is_type(nv, json_type_string))
			return pc_error_set(err, EINVAL, "%s: names[%zu] is not a string", where, i);
		name = json_object_get_string(nv);
		if (is_never(name))
			return pc_error_set(err, EPERM, "%s: '%s' is never allowed, whatever a policy says", where,
					    name);
		if (needs_args(name) && n_args == 0)
			return pc_error_set(err, EPERM, "%s: '%s' may only be allowed under argument conditions", where,
					    name);
		nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR)
			return pc_error_set(err, EINVAL, "%s: unknown syscall '%s' (libseccomp %u.%u does not know it)",
					    where, name, seccomp_version()->major, seccomp_version()->minor);
		if ((r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, (unsigned)n_args, cmp)) < 0)
			return pc_error_set(err, -r, "%s: libseccomp refused the rule for '%s'", where, name);
	}
	return 0;
}

static int read_list(const char *path, char **out, size_t *len, struct pc_error *err)
{
	return pc_read_file(path, "seccomp list", O_NOFOLLOW, MAX_LIST_BYTES, out, len, err);
}

static int parse_list(const char *path, const char *buf, size_t len, json_object **out, struct pc_error *err)
{
	const char *why = "";

	*out = pc_json_parse(buf, len, &why);
	if (!*out || !json_object_is_type(*out, json_type_object))
		return pc_error_set(err, EINVAL, "seccomp list '%s': %s", path, *out ? "expected an object" : why);
	return 0;
}

static int build_ctx_from(const char *path, const char *buf, size_t len, scmp_filter_ctx *out, struct pc_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	_cleanup_seccomp_ scmp_filter_ctx ctx = NULL;
	json_object *rules;
	int r;

	if ((r = parse_list(path, buf, len, &root, err)) < 0)
		return r;
	json_object_object_foreach (root, key, unused) {
		(void)unused;
		if (strcmp(key, "description") != 0 && strcmp(key, "rules") != 0)
			return pc_error_set(err, EINVAL, "seccomp list '%s': unknown key '%s'", path, key);
	}
	if (!json_object_object_get_ex(root, "rules", &rules) || !json_object_is_type(rules, json_type_array) ||
	    json_object_array_length(rules) > MAX_RULES)
		return pc_error_set(err, EINVAL, "seccomp list '%s': 'rules' must be an array", path);
	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return pc_error_set(err, ENOMEM, "seccomp_init");
	/* Only the native ABI: libseccomp's x86_64 filter sends i386 calls
	 * (another AUDIT_ARCH) and x32 ones (nr with __X32_SYSCALL_BIT) to the
	 * bad-arch action. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM))) < 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0)
		return pc_error_set(err, -r, "seccomp_attr_set");
	if ((r = fixed_rules(ctx, err)) < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(rules); i++) {
		if ((r = add_rule(ctx, json_object_array_get_idx(rules, i), i, path, err)) < 0)
			return r;
	}
	*out = steal_pointer(&ctx);
	return 0;
}

static int build_ctx(const char *path, scmp_filter_ctx *out, struct pc_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = read_list(path, &buf, &len, err)) < 0)
		return r;
	return build_ctx_from(path, buf, len, out, err);
}

/* Everything a compiled program depends on: the list's bytes, the fixed
 * rules (the never table and the CLONE_NEW* bits; bump the tag when the
 * code of fixed_rules() changes), libseccomp's version and the kernel it
 * probed (pc_bpf_cache_key adds those two: no libseccomp probe on a hit). */
static void cache_key(const char *buf, size_t len, char key[PC_SHA256_HEX])
{
	struct pc_sha256 h;

	pc_sha256_init(&h);
	pc_sha256_update(&h, "pycell-seccomp-v1", 18);
	for (size_t i = 0; i < ARRAY_SIZE(never); i++)
		pc_sha256_update(&h, never[i].name, strlen(never[i].name) + 1);
	pc_sha256_update(&h, clone_new, sizeof(clone_new));
	pc_sha256_update(&h, buf, len);
	pc_bpf_cache_key(&h, key);
}

static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *prog, struct pc_error *err)
{
	_cleanup_close_ int fd = memfd_create("pycell-bpf", MFD_CLOEXEC);
	struct stat st;
	void *buf;
	int r;

	if (fd < 0)
		return pc_error_set(err, errno, "memfd_create for the seccomp program");
	if ((r = seccomp_export_bpf(ctx, fd)) < 0)
		return pc_error_set(err, -r, "seccomp_export_bpf");
	if (fstat(fd, &st) < 0)
		return pc_error_set(err, errno, "fstat seccomp program");
	if (st.st_size == 0 || st.st_size % (off_t)sizeof(struct sock_filter) ||
	    st.st_size > BPF_MAXINSNS * (off_t)sizeof(struct sock_filter))
		return pc_error_set(err, E2BIG,
				    "seccomp program has a bad size (%lld bytes; the kernel takes %d instructions)",
				    (long long)st.st_size, BPF_MAXINSNS);
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return pc_error_set(err, ENOMEM, "seccomp program");
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		return pc_error_set(err, EIO, "read back the seccomp program");
	}
	prog->filter = buf;
	prog->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	return 0;
}

int pc_seccomp_prepare(struct pc_seccomp *s, const char *list_path, struct pc_error *err)
{
	_cleanup_seccomp_ scmp_filter_ctx ctx = NULL;
	_cleanup_free_ char *buf = NULL;
	char key[PC_SHA256_HEX];
	size_t len = 0;
	int r;

	memset(s, 0, sizeof(*s));
	if ((r = read_list(list_path, &buf, &len, err)) < 0)
		return r;
	cache_key(buf, len, key);
	if (pc_bpf_cache_load(key, &s->prog) == 1) {
		s->enabled = true;
		s->cached = true;
		return 0;
	}
	if ((r = build_ctx_from(list_path, buf, len, &ctx, err)) < 0)
		return r;
	if ((r = export_bpf(ctx, &s->prog, err)) < 0)
		return r;
	pc_bpf_cache_store(key, &s->prog);
	s->enabled = true;
	return 0;
}

void pc_seccomp_free(struct pc_seccomp *s)
{
	free(s->prog.filter);
	memset(s, 0, sizeof(*s));
}

static int send_listener(int sync_fd, int listener)
{
	struct pc_sync_msg m = { .type = PC_SYNC_SECCOMP_FD };

	return send_fds(sync_fd, &m, sizeof(m), &listener, 1) < 0 ? -1 : 0;
}

int pc_seccomp_setup_child(const struct pc_seccomp *s, int sync_fd, struct pc_error *err)
{
	int listener;

	if (!s->enabled)
		return 0;
	/* no_new_privs is already set (caps.c), which the kernel requires of
	 * an unprivileged filter. The listener comes back O_CLOEXEC. */
	listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &s->prog);
	if (listener < 0)
		return pc_error_set(err, errno, "load seccomp filter");
	/* The job must never hold its own listener: it could answer its own
	 * notifications. The supervisor keeps the only copy. */
	/* sync 5 */
	if (send_listener(sync_fd, listener) < 0) {
		int e = errno;
		close(listener);
		return pc_error_set(err, e, "pass the seccomp listener to the supervisor");
	}
	close(listener);
	return 0;
}

int pc_seccomp_notify_handle(int listener, char *name, size_t len)
{
	struct seccomp_notif *req = NULL;
	struct seccomp_notif_resp *resp = NULL;
	char *n;
	int r;

	if ((r = seccomp_notify_alloc(&req, &resp)) < 0)
		return r;
	if ((r = seccomp_notify_receive(listener, req)) < 0) {
		seccomp_notify_free(req, resp);
		return r == -ENOENT ? 0 : r;
	}
	n = seccomp_syscall_resolve_num_arch(req->data.arch, req->data.nr);
	if (n)
		snprintf(name, len, "%s", n);
	else
		snprintf(name, len, "syscall %d", req->data.nr);
	free(n);
	/* Deliberately unanswered: the caller stays parked in the kernel
	 * until the supervisor's SIGKILL, so it never returns to user space
	 * (an EPERM answer would let it run on until the kill lands). */
	seccomp_notify_free(req, resp);
	return 1;
}

int pc_seccomp_export_pfc(const char *list_path, int fd, size_t *bpf_insns, struct pc_error *err)
{
	_cleanup_seccomp_ scmp_filter_ctx ctx = NULL;
	struct sock_fprog prog = { 0 };
	int r;

	if ((r = build_ctx(list_path, &ctx, err)) < 0)
		return r;
	if ((r = export_bpf(ctx, &prog, err)) < 0)
		return r;
	*bpf_insns = prog.len;
	free(prog.filter);
	if ((r = seccomp_export_pfc(ctx, fd)) < 0)
		return pc_error_set(err, -r, "seccomp_export_pfc");
	return 0;
}

int pc_seccomp_check(const char *list_path, struct pc_error *err)
{
	_cleanup_seccomp_ scmp_filter_ctx ctx = NULL;

	return build_ctx(list_path, &ctx, err);
}
