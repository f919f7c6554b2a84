/* The embedded interpreter (DESIGN.md section 2, "pycell-init").
 *
 * pid 1 forks the job process and never touches Python; the job process
 * calls pc_embed_job(), which does, in this order:
 *   1. load the exec filter the supervisor built (exec_filter.c) with
 *      prctl(PR_SET_SECCOMP): from here on nothing in the job can execve,
 *      execveat or memfd_create, whatever Python or native code tries;
 *   2. PySys_AddAuditHook(): a hook added before Py_Initialize is the only
 *      one CPython treats as beyond the reach of Python code (PEP 578; hooks
 *      added later with sys.addaudithook can be outlived, never removed);
 *   3. Py_InitializeFromConfig() with PyConfig_InitIsolatedConfig(): no
 *      site, no user site, no PYTHON* environment, no bytecode writes,
 *      safe_path, and an explicit sys.path;
 *   4. Py_RunMain() on the shim script, which reads fd 3 and reports on fd 4.
 *
 * The audit hook is the unconditional floor, not the policy: the shim adds
 * its own Python-level hook for the events a policy decides. This one only
 * fires on events no job ever has a reason to raise. It never raises (user
 * code could catch that): it writes a SECURITY_ERROR report on the result
 * pipe, kills every other process of the job and _exit()s. */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first: it sets the feature macros (Python docs, "Embedding") */

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "embed.h"
#include "sync.h"

#define SHIM_DIR "/.pycell/shim"
#define STR_(x)	 #x
#define STR(x)	 STR_(x)
/* "3.11": the release this binary links; the rootfs must carry the same. */
#define PY_MM STR(PY_MAJOR_VERSION) "." STR(PY_MINOR_VERSION)

void pc_init_report(int status_fd, int errnum, const char *fmt, ...)
{
	struct pc_init_status st = { .errnum = errnum };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st.msg, sizeof(st.msg), fmt, ap);
	va_end(ap);
	if (write(status_fd, &st, sizeof(st)) < 0) {
		/* pid 1 sees EOF without a record and reports that instead */
	}
}

/* Events never legitimate in a job. Process creation is refused by the
 * kernel anyway (exec filter); tripping here names the attempt. fork stays
 * allowed: multiprocessing's pool forks. subprocess.Popen is deliberately
 * not here: the stdlib runs best-effort probes through it and handles the
 * OSError the exec filter gives (platform.processor() runs `uname -p`, which
 * Debian's pandas calls on import; uuid.getnode(), ctypes.util.find_library).
 * The shim's policy hook decides about subprocess in user code.
 * os.posix_spawn is raised by subprocess only for close_fds=False. */
static const char *const tripwires[] = {
	"os.system",		      /* a shell */
	"os.exec",		      /* execv*: replaces the interpreter */
	"os.posix_spawn",	      /* posix_spawn, posix_spawnp */
	"os.spawn",		      /* os.spawnv* */
	"pty.spawn",		      /* fork + exec on a pty */
	"_posixsubprocess.fork_exec", /* not raised by 3.11; named for later releases */
	"sys.remote_exec",	      /* 3.14: runs code in another process */
	"os.add_dll_directory",	      /* Windows only; never meaningful here */
	/* ctypes: loading libraries and calling or reading raw addresses is
	 * native code execution and arbitrary memory access. `import ctypes`
	 * itself (numpy tries it) raises only ctypes.dlopen(None), allowed below.
	 * 3.11 raises nothing for calls through CFUNCTYPE objects made from an
	 * address (ctypes.memmove, ctypes.cast) or for c_char_p(int).value, and
	 * the same ctypes.cdata for T.from_address() as for the from_buffer()
	 * that multiprocessing.Value/Array use (so cdata cannot be one): the
	 * floor cannot see those; the shim's import allowlist keeps ctypes away
	 * from user code, and the kernel layers bound what it could do. */
	"ctypes.dlsym",		/* CDLL.<name>: a symbol of a loaded library */
	"ctypes.dlsym/handle",	/* the same by raw handle */
	"ctypes.call_function", /* _ctypes.call_function(): call any address */
	"ctypes.PyObj_FromPtr", /* _ctypes.PyObj_FromPtr(): any address as a Python object */
	"ctypes.string_at",	/* read any address */
	"ctypes.wstring_at",	/* read any address */
};

/* One word shared by the job process and every process it forks (set up
 * before Python starts): the first process to trip writes the report, so two
 * workers tripping at once never leave two documents on the result pipe. */
static int *tripped_once;

static void __attribute__((noreturn)) trip(const char *event)
{
	char buf[512];
	int n;

	if (tripped_once && __atomic_exchange_n(tripped_once, 1, __ATOMIC_SEQ_CST)) {
		kill(-1, SIGKILL);
		_exit(1);
	}

	/* event is one of our literals: no JSON escaping needed. One write
	 * under PIPE_BUF is atomic on a pipe (pipe(7)). */
	n = snprintf(buf, sizeof(buf),
		     "{\"ok\": false, \"error\": {\"code\": \"SECURITY_ERROR\", \"message\": \"runtime tripwire: %s\", "
		     "\"details\": {\"violations\": [\"audit:%s\"], \"layer\": \"audit-hook\"}}}",
		     event, event);
	if (n > 0 && write(PC_FD_RESULT, buf, (size_t)n) < 0) {
		/* nothing left to report through */
	}
	/* The tripping process may be a multiprocessing child: take the rest
	 * of the job with it (kill(-1) spares pid 1 and the caller), so no
	 * second report follows ours. */
	kill(-1, SIGKILL);
	_exit(1);
}

static int audit_hook(const char *event, PyObject *args, void *data)
{
	(void)data;
	/* Runs for every event (imports, opens, compiles): cheap prefilter. */
	if (event[0] != 'o' && event[0] != 's' && event[0] != 'c' && event[0] != 'p' && event[0] != '_')
		return 0;
	if (strcmp(event, "ctypes.dlopen") == 0) {
		/* dlopen(NULL) is ctypes' own import (pythonapi = PyDLL(None));
		 * any named library is new native code. */
		if (PyTuple_Check(args) && PyTuple_GET_SIZE(args) >= 1 && PyTuple_GET_ITEM(args, 0) == Py_None)
			return 0;
		trip("ctypes.dlopen");
	}
	for (size_t i = 0; i < sizeof(tripwires) / sizeof(tripwires[0]); i++) {
		if (strcmp(event, tripwires[i]) == 0)
			trip(tripwires[i]);
	}
	return 0;
}

void pc_embed_fresh_trip_word(void)
{
	if (tripped_once)
		munmap(tripped_once, sizeof(int));
	tripped_once = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (tripped_once == MAP_FAILED)
		tripped_once = NULL;
}

static PyStatus set_paths(PyConfig *c, const char *script)
{
	static const wchar_t *const path[] = {
		L"/usr/lib/python" PY_MM,
		L"/usr/lib/python" PY_MM "/lib-dynload",
		/* Debian installs numpy, pandas there; site.py would add it. */
		L"/usr/lib/python3/dist-packages",
		L"" SHIM_DIR,
	};
	char *argv[] = { (char *)script, NULL };
	PyStatus s;

	if (PyStatus_Exception(s = PyConfig_SetString(c, &c->program_name, L"/usr/bin/python3")))
		return s;
	if (PyStatus_Exception(s = PyConfig_SetString(c, &c->executable, L"/usr/bin/python3")))
		return s;
	if (PyStatus_Exception(s = PyConfig_SetString(c, &c->home, L"/usr")))
		return s;
	if (PyStatus_Exception(s = PyConfig_SetBytesString(c, &c->run_filename, script)))
		return s;
	if (PyStatus_Exception(s = PyConfig_SetBytesArgv(c, 1, argv)))
		return s;
	c->module_search_paths_set = 1;
	for (size_t i = 0; i < sizeof(path) / sizeof(path[0]); i++) {
		if (PyStatus_Exception(s = PyWideStringList_Append(&c->module_search_paths, path[i])))
			return s;
	}
	return PyStatus_Ok();
}

static PyStatus start_python(const char *script)
{
	PyPreConfig pre;
	PyConfig c;
	PyStatus s;

	/* Isolated preconfig leaves the C locale alone; the CLI (python3 -I)
	 * sets it from LANG=C.UTF-8, which UTF-8 mode matches. */
	PyPreConfig_InitIsolatedConfig(&pre);
	pre.configure_locale = 1;
	pre.utf8_mode = 1;
	if (PyStatus_Exception(s = Py_PreInitialize(&pre)))
		return s;

	PyConfig_InitIsolatedConfig(&c); /* isolated, no env, no user site, safe_path */
	c.site_import = 0;		 /* -S */
	c.write_bytecode = 0;		 /* -B: the rootfs is read-only anyway */
	c.user_site_directory = 0;
	c.use_environment = 0;
	c.safe_path = 1;
	c.parse_argv = 0;
	/* As python3 does: SIGINT -> KeyboardInterrupt, SIGPIPE ignored so a
	 * closed stdout is a BrokenPipeError, not a silent death. */
	c.install_signal_handlers = 1;
	c.configure_c_stdio = 1;
	s = set_paths(&c, script);
	if (!PyStatus_Exception(s))
		s = Py_InitializeFromConfig(&c);
	PyConfig_Clear(&c);
	return s;
}

void pc_embed_job(const char *script, const struct sock_fprog *filter, int status_fd)
{
	PyStatus s;

	/* PR_SET_SECCOMP, not seccomp(2): the policy's filter allows prctl
	 * and no_new_privs is already set (sandbox.c, child recipe). */
	if (filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter, 0, 0) < 0) {
		pc_init_report(status_fd, errno, "pycell-init: load the exec filter");
		_exit(125);
	}
	tripped_once = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (tripped_once == MAP_FAILED)
		tripped_once = NULL; /* then every tripping process reports */
	if (PySys_AddAuditHook(audit_hook, NULL) < 0) {
		pc_init_report(status_fd, 0, "pycell-init: PySys_AddAuditHook refused the hook");
		_exit(125);
	}
	s = start_python(script);
	if (PyStatus_IsExit(s))
		_exit(s.exitcode);
	if (PyStatus_Exception(s)) {
		pc_init_report(status_fd, EINVAL, "pycell-init: start the embedded Python %s: %s%s%s", PY_VERSION,
			       s.func ? s.func : "", s.func ? ": " : "", s.err_msg ? s.err_msg : "unknown error");
		_exit(125);
	}
	close(status_fd); /* EOF: pid 1 reports the job as running */
	exit(Py_RunMain());
}
