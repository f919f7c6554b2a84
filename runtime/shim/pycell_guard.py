"""pycell runtime guards: restricted builtins, a guarded __import__, read-only
module proxies and the audit-hook tripwire (DESIGN.md 5.8).

Module proxies: plain modules leak dangerous things under innocent names
(statistics.sys, enum.bltns, random._os, collections._sys), so user code gets a
ReadOnlyModule holding only the public, non-module attributes the policy
allows. A few library functions take attribute *names* as data and would
turn into a computed getattr (operator.attrgetter, string.Formatter,
functools.update_wrapper's assigned/updated); they are left out or replaced.

The audit hook is armed after the shim has compiled the user's code; it
writes a SECURITY_ERROR report straight to the result descriptor and calls
posix._exit, so no `except BaseException` in user code can swallow it.
"""
import builtins
import posix  # os only where a path is resolved (_realpath): see pycell_job
import sys

import pycell_check

JOB_FILE = "<job>"
WRITABLE_ROOTS = ("/workspace", "/tmp")
# The tripwire also lets library code write the capped /dev/shm the sandbox
# mounts for multiprocessing (arenas, semaphores); user code's open() cannot.
HOOK_WRITABLE_ROOTS = WRITABLE_ROOTS + ("/dev/shm",)
ModuleType = type(sys)

# policy "module_attributes" defaults: "*" = every public non-module
# attribute, "-name" takes one away. Applied when the policy is silent.
DEFAULT_ATTRIBUTE_RULES = {
    "operator": ["*", "-attrgetter", "-methodcaller"],
    "string": ["*", "-Formatter"],
    "numpy": ["*", "-ctypeslib"],
}


class ReadOnlyModule(ModuleType):
    """A module snapshot user code may read but not modify."""

    def __setattr__(self, name, value):
        raise AttributeError(f"module {self.__name__!r} is read-only in pycell")

    def __delattr__(self, name):
        raise AttributeError(f"module {self.__name__!r} is read-only in pycell")


def _safe_update_wrapper(real):
    def update_wrapper(wrapper, wrapped, *args, **kwargs):
        if args or kwargs:
            raise PermissionError("pycell: functools.update_wrapper/wraps take no assigned/updated here")
        return real(wrapper, wrapped)
    update_wrapper.__name__ = real.__name__
    update_wrapper.__doc__ = real.__doc__
    return update_wrapper


def _safe_wraps(update_wrapper):
    def wraps(wrapped, *args, **kwargs):
        if args or kwargs:
            raise PermissionError("pycell: functools.update_wrapper/wraps take no assigned/updated here")
        return lambda wrapper: update_wrapper(wrapper, wrapped)
    return wraps


def _safe_make_dataclass(real):
    def make_dataclass(cls_name, fields, *args, **kwargs):
        for f in fields:
            name = f if isinstance(f, str) else (f[0] if isinstance(f, (tuple, list)) and f else None)
            if not isinstance(name, str) or name.startswith("__") or name in _frame_attrs():
                raise PermissionError(f"pycell: field name {name!r} is not allowed")
        if "namespace" in kwargs or len(args) >= 2:
            raise PermissionError("pycell: make_dataclass(namespace=...) is not allowed")
        return real(cls_name, fields, *args, **kwargs)
    make_dataclass.__name__ = "make_dataclass"
    return make_dataclass


def _frame_attrs():
    return pycell_check.FRAME_ATTRS


# Warm mode (pycell_warm.py): the zygote builds the policy's part of a
# job's builtins once (prepare_builtins()), and the job process it forks
# takes that dict as it is instead of building its own. Building copies
# every builtin into a new dict, which writes their reference counts: each
# page so written is one the job process must copy from the zygote first
# (~60 of a json job's ~580). A prepared dict goes to one guard only.
_PREPARED_BUILTINS = {}


def prepare_builtins(denied):
    """Builds the builtins for policies denying `denied`, kept for the next
    guard in this process."""
    _PREPARED_BUILTINS[frozenset(denied)] = _policy_builtins(denied)


def prepare_guard(python):
    """Warm mode: the whole guard of a job without grants under this policy
    (python section), built once in the zygote: its sets, its builtins
    (bound to it) and the proxies of the policy's modules, the same objects
    a job's own guard would build from the same policy. Building them per
    job read every attribute of every proxied module (a reference count
    written per value: pages to copy). For pycell_job.prepare_policy; the
    guard serves one job, the one the zygote's fork runs."""
    g = Guard(python, [], -1)
    g.ready_builtins = g.builtins_dict()
    for name in sorted(g.allowed):
        mod = sys.modules.get(name)
        if isinstance(mod, ModuleType):
            g.proxy(mod)
    return g


class Guard:
    """Everything the job's code is allowed to reach, built from the policy."""

    def __init__(self, python, granted, report_fd):
        self.allowed = (set(python.get("allowed_imports") or ()) | set(granted) | {m + ".*" for m in granted}
                        | {"__future__"})
        self.packages = frozenset(granted)  # third-party packages: their submodules come along
        self.rules = dict(DEFAULT_ATTRIBUTE_RULES)
        self.rules.update(python.get("module_attributes") or {})
        self.denied = set(python.get("denied_builtins") or ())
        self.report_fd = report_fd
        self.proxies = {}
        self.real_import = builtins.__import__
        self.input_text = None  # the input's JSON text, or None: read from input_fd
        self.input_fd = None  # in a sandbox: fd 0, the sealed memfd holding the input's JSON
        self.input_used = False
        self.blocked = self._blocked_values()
        self.ready_builtins = None  # prepare_guard()

    def _blocked_values(self):
        ids = {id(builtins.__import__), id(builtins.open)}
        for name in ("eval", "exec", "compile", "breakpoint", "globals", "locals", "vars", "getattr",
                     "setattr", "delattr", "input", "memoryview", "dir", "help"):
            if hasattr(builtins, name):
                ids.add(id(getattr(builtins, name)))
        return ids

    # ---- module proxies ------------------------------------------------------
    def _attr_ok(self, modname, name, value, rule):
        if name.startswith("_") or isinstance(value, ModuleType) or id(value) in self.blocked:
            return False
        return self._attr_rule_ok(name, rule)

    @staticmethod
    def _attr_rule_ok(name, rule):
        if rule is None or "*" in rule:
            return "-" + name not in (rule or ())
        return name in rule

    def proxy(self, mod):
        name = mod.__name__
        p = self.proxies.get(name)
        if p is None:
            p = ReadOnlyModule(name)
            d = p.__dict__
            rule = self.rules.get(name)
            if rule is not None and not isinstance(rule, list):
                rule = None
            for k, v in list(vars(mod).items()):
                if self._attr_ok(name, k, v, rule):
                    d[k] = v
                elif (isinstance(v, ModuleType) and getattr(v, "__name__", None) == name + "." + k
                      and not k.startswith("_") and self._attr_rule_ok(k, rule)
                      and pycell_check.import_allowed(v.__name__, self.allowed)):
                    d[k] = self.proxy(v)  # an allowed submodule, itself a proxy
            if name == "functools":
                if "update_wrapper" in d:
                    d["update_wrapper"] = _safe_update_wrapper(mod.update_wrapper)
                if "wraps" in d:
                    d["wraps"] = _safe_wraps(d["update_wrapper"])
            if name == "dataclasses" and "make_dataclass" in d:
                d["make_dataclass"] = _safe_make_dataclass(mod.make_dataclass)
            d["__all__"] = sorted(k for k in d if not k.startswith("_"))
            if name.partition(".")[0] in self.packages or "-packages/" in str(getattr(mod, "__file__", "")):
                d["__getattr__"] = self._submodule_getter(mod)
            self.proxies[name] = p
        # Submodules the policy lists by their dotted name (collections.abc).
        return p

    def _submodule_getter(self, mod):
        """PEP 562 fallback of a granted package's proxy: its own submodules
        (numpy.random, numpy.linalg) as proxies, never foreign modules."""
        rule = self.rules.get(mod.__name__)
        rule = rule if isinstance(rule, list) else None

        def __getattr__(attr):
            v = vars(mod).get(attr)
            if (not attr.startswith("_") and isinstance(v, ModuleType) and self._attr_rule_ok(attr, rule)
                    and getattr(v, "__name__", None) == mod.__name__ + "." + attr):
                return self.proxy(v)
            raise AttributeError(f"module {mod.__name__!r} has no attribute {attr!r}")
        return __getattr__

    def guarded_import(self, name, globals=None, locals=None, fromlist=(), level=0):
        # C code calling PyImport_Import from inside a user frame (datetime's
        # strptime importing _strptime) comes through here with a *list* as
        # fromlist; import statements compile fromlist to None or a tuple.
        if type(fromlist) is list:
            return self.real_import(name, globals, locals, fromlist, level)
        if level != 0:
            raise ImportError("pycell: relative imports are not allowed")
        if not pycell_check.import_allowed(name, self.allowed):
            raise ImportError(f"pycell: import of {name!r} is not allowed by the policy")
        self.real_import(name, None, None, (), 0)
        target = name if fromlist else name.partition(".")[0]
        top = sys.modules[target]
        if target != name:
            # `import a.b` binds a: make sure a's proxy carries b.
            self.proxies.pop(target, None)
        p = self.proxy(top)
        for item in fromlist or ():
            if item != "*" and item not in p.__dict__:
                sub = name + "." + item
                if pycell_check.import_allowed(sub, self.allowed):
                    self.real_import(sub, None, None, (), 0)
                    p = self.proxy(top)
                    if item in p.__dict__:
                        continue
                # Checked here so IMPORT_FROM never falls back to sys.modules.
                raise ImportError(f"pycell: cannot import name {item!r} from {name!r}")
        return p

    # ---- builtins -------------------------------------------------------------
    def guarded_open(self, file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
                     closefd=True, opener=None):
        if not isinstance(file, (str, bytes)) or opener is not None or closefd is not True:
            raise PermissionError("pycell: open() takes a path under /workspace or /tmp")
        path = _realpath(file)
        if not any(path == r or path.startswith(r + "/") for r in WRITABLE_ROOTS):
            raise PermissionError(f"pycell: open() is limited to /workspace and /tmp, not {path!r}")
        return builtins.open(path, mode, buffering, encoding, errors, newline)

    def guarded_input(self, prompt=None):
        if self.input_used or (self.input_text is None and self.input_fd is None):
            raise EOFError("pycell: input() reads the job's input (as JSON) once")
        self.input_used = True
        if self.input_text is None:
            self.input_text = _read_at_start(self.input_fd)
        return self.input_text

    def builtins_dict(self):
        b, self.ready_builtins = self.ready_builtins, None
        if b is not None:
            return b
        b = _PREPARED_BUILTINS.pop(frozenset(self.denied), None) or _policy_builtins(self.denied)
        b["__import__"] = self.guarded_import
        for name, fn in (("open", self.guarded_open), ("input", self.guarded_input)):
            if name not in self.denied:
                b[name] = fn
        return b


def _policy_builtins(denied):
    """The job's builtins but those bound to its guard (builtins_dict)."""
    b = {}
    for k, v in vars(builtins).items():
        if k in denied or (k.startswith("_") and k not in ("__build_class__", "__debug__")):
            continue
        b[k] = v
    b["__name__"] = "builtins"
    for name in ("getattr", "setattr", "delattr", "hasattr"):
        if name not in denied:
            b[name] = _guarded_attr_func(getattr(builtins, name))
    return b


def _guarded_attr_func(real):
    def f(obj, name, *rest):
        if isinstance(name, str) and pycell_check.attr_reason(name):
            raise PermissionError(f"pycell: attribute {name!r} is not allowed")
        return real(obj, name, *rest)
    f.__name__ = real.__name__
    return f


# ---- audit hook -------------------------------------------------------------------
ALWAYS_DENIED = frozenset((
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
    "os.chdir", "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate",
    "os.startfile", "os.add_dll_directory", "subprocess.Popen", "pty.spawn", "sys.addaudithook",
    "sys.settrace", "sys.setprofile", "sys._current_frames", "sys._current_exceptions", "sys.excepthook",
    "sys.unraisablehook", "setopencodehook",
    "cpython.run_command", "cpython.run_file", "cpython.run_module", "cpython.run_startup",
    "cpython.run_interactivehook", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "mmap.__new__", "pickle.find_class", "resource.setrlimit", "resource.prlimit", "urllib.Request",
    "webbrowser.open", "shutil.rmtree", "shutil.copyfile", "shutil.move", "sqlite3.enable_load_extension",
    "sqlite3.load_extension", "socket.sethostname", "fcntl.ioctl", "msvcrt.open_osfhandle",
))
DENIED_PREFIXES = ("ctypes.", "_posixsubprocess", "os.exec", "os.spawn", "os.posix_spawn", "winreg.")
# Loading or calling native code and reading raw addresses: never allowed,
# whatever a grant needs from ctypes.
CTYPES_NEVER = frozenset(("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function",
                          "ctypes.PyObj_FromPtr", "ctypes.string_at", "ctypes.wstring_at"))
CODE_EVENTS = frozenset(("compile", "exec", "marshal.loads", "marshal.load", "marshal.dumps"))
OPEN_WRITE = posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_APPEND
SOCKET_ADDR_EVENTS = frozenset(("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"))
LOOPBACK = frozenset(("127.0.0.1", "::1", "localhost", ""))


class ReportToken:
    """Exactly one report per job, even with forked workers tripping at the
    same moment: one byte in a pipe made before user code runs. Whoever reads
    it (a one-byte read(2) is atomic) writes the report; everyone else stays
    silent. The process that took it keeps the right to report."""

    def __init__(self):
        self.r, w = posix.pipe2(posix.O_NONBLOCK | posix.O_CLOEXEC)
        posix.write(w, b"x")
        posix.close(w)
        self.holder = None

    def claim(self):
        if self.holder == posix.getpid():
            return True
        try:
            got = posix.read(self.r, 1) == b"x"
        except OSError:
            got = False
        if got:
            self.holder = posix.getpid()
        return got


def _read_at_start(fd):
    """The whole file from offset 0 (pread: where sys.stdin has read to does
    not matter), as text; EOFError if the job closed or replaced it."""
    chunks, off = [], 0
    try:
        while True:
            b = posix.pread(fd, 1 << 16, off)
            if not b:
                break
            chunks.append(b)
            off += len(b)
        return b"".join(chunks).decode()
    except (OSError, UnicodeDecodeError):
        raise EOFError("pycell: the job's input is no longer on its stdin") from None


def _realpath(path):
    """os.path.realpath(os.fsdecode(path)); os is imported on the first call,
    as a job opens a file (inside the audit hook its import raises no event
    the hook acts on). Code that could put its own "os" in sys.modules first
    could as well patch the real one's path.realpath, so binding os at start
    would not be stronger (no shipped policy lets a job reach sys.modules)."""
    import os

    return os.path.realpath(os.fsdecode(path))


def write_security_report(fd, violation):
    """Hand-built JSON: nothing the job may have monkeypatched (json's encoder
    classes are reachable through the json proxy) is on this path."""
    v = "".join(c if (c.isalnum() or c in "._:-/") and c.isascii() else "?" for c in violation)[:200]
    doc = ('{"ok":false,"error":{"code":"SECURITY_ERROR","message":"runtime policy violation: %s",'
           '"details":{"violations":["%s"],"layer":"audit"}}}' % (v, v))
    try:
        posix.write(fd, doc.encode())
    except OSError:
        pass


def make_audit_hook(report_fd, trusted_files, allow=(), in_sandbox=False, token=None):
    """The tripwire. Returns (hook, arm); the hook is inert until arm().
    `allow`: events a grant needs (multiprocessing: os.fork, os.kill)."""
    denied = ALWAYS_DENIED.difference(allow) if allow else ALWAYS_DENIED
    ctypes_ok = "ctypes.*" in allow
    # armed, inside the hook (events raised by the hook itself), the job's own
    # code object, whose one exec the shim is about to perform
    state = [False, False, None]
    getframe = sys._getframe
    _exit, getpid, kill, first_pid = posix._exit, posix.getpid, posix.kill, posix.getpid()
    flush = (sys.stdout.flush, sys.stderr.flush)

    def trip(event):
        for f in flush:
            try:
                f()
            except Exception:
                pass
        if token is None or token.claim():
            write_security_report(report_fd, "audit:" + event)
            if in_sandbox and getpid() != first_pid:
                # A forked child (multiprocessing) tripped: end the whole job
                # (kill(2): -1 spares pid 1 and the caller).
                kill(-1, 9)
        _exit(1)

    def caller():
        try:
            return getframe(2).f_code.co_filename
        except ValueError:
            return ""

    def hook(event, args):
        if not state[0] or state[1]:
            return
        state[1] = True
        try:
            if event == "ctypes.dlopen" and args and args[0] is None:
                pass  # ctypes' own import (pythonapi = PyDLL(None)); numpy imports ctypes
            elif event.startswith("ctypes.") and ctypes_ok and event not in CTYPES_NEVER:
                pass  # a grant's ctypes use (multiprocessing Value/Array); never code or raw memory
            elif event in denied or (event.startswith(DENIED_PREFIXES) and event not in allow):
                trip(event)
            elif event in CODE_EVENTS:
                if event == "exec" and state[2] is not None and args and args[0] is state[2]:
                    state[2] = None
                    return
                fn = caller()
                if not (fn.startswith("<frozen importlib") or fn in trusted_files):
                    trip(event)
            elif event == "open":
                _check_open(args, trip, report_fd)
            elif event in SOCKET_ADDR_EVENTS:
                addr = args[1] if len(args) > 1 else None
                if isinstance(addr, tuple) and addr and addr[0] not in LOOPBACK:
                    trip(event)
            elif event == "object.__getattr__" or event == "object.__setattr__" or event == "object.__delattr__":
                if caller() == JOB_FILE:
                    trip(event + ":" + str(args[1]) if len(args) > 1 else event)
            elif event == "sys._getframe" or event == "code.__new__" or event == "function.__new__":
                if caller() == JOB_FILE:
                    trip(event)
        finally:
            state[1] = False

    def arm(code):
        state[2] = code
        state[0] = True

    return hook, arm


def _check_open(args, trip, report_fd):
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    if isinstance(path, int):
        if path == report_fd:  # a file object on the result channel could forge the report
            trip("open:result_fd")
        return
    writing = isinstance(flags, int) and flags & OPEN_WRITE
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        writing = True
    if not writing:
        return
    try:
        p = _realpath(path)
    except Exception:
        trip("open")
        return
    if not any(p == r or p.startswith(r + "/") for r in HOOK_WRITABLE_ROOTS):
        trip("open")
