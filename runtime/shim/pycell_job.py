"""pycell shim, the job runner (the entry script is pycell_shim.py).

The shim reads fd 3, checks the code (pycell_check), compiles it, arms the
audit hook (pycell_guard), runs it with restricted builtins and module
proxies, and writes exactly one JSON report on fd 4:
  {"ok": true, "result": v} | {"ok": false, "error": {"code", "message", "details"}}
With policy python.checks false (ablation) the Python layer is off entirely:
plain builtins, real modules, no hook, so kernel layers can be tested alone.

Host tests call run_job(bootstrap, report_fd) in a subprocess (an audit hook
cannot be removed once added, and a tripwire ends the process).
"""
import gc
# Not os: os and what it imports cost a cold `pass` job ~1 ms (a json job
# ~0.2 ms); posix has every call the shim makes.
import posix
import sys

import pycell_check
import pycell_guard

# JSON through the C accelerator only: the json package would import re,
# enum and more on every run, and json.JSONEncoder is a plain class the job
# can reach through the json proxy and patch (JSONEncoder.encode = ...) to
# rewrite the shim's own report. Both C objects are bound here, before any
# user code exists.
from _json import encode_basestring_ascii as _c_str, make_encoder as _c_make_encoder, make_scanner as _c_scanner

JOB_FILE = pycell_guard.JOB_FILE


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__
    memo = None


def loads(text):
    """json.loads for the runtime's own documents (the bootstrap)."""
    s = text.strip(" \t\n\r")
    try:
        value, end = _c_scanner(_ScanContext())(s, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(s):
        raise ValueError(f"extra data at {end}")
    return value


class _Unset:
    pass


def error(code, message, details):
    return {"ok": False, "error": {"code": code, "message": message, "details": details}}


def _json_path_error(value, path="$", depth=0, seen=None):
    """(path, reason) of the first value json.dumps(allow_nan=False) refuses."""
    if depth > 200:
        return path, "nested too deeply"
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return path, "not JSON-serialisable: float " + repr(value)
        return None
    if not isinstance(value, (list, tuple, dict)):
        return path, "not JSON-serialisable: " + type(value).__name__
    seen = seen if seen is not None else set()
    if id(value) in seen:
        return path, "circular reference"
    seen.add(id(value))
    try:
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    return path, "key not JSON-serialisable: " + type(k).__name__
                r = _json_path_error(v, f"{path}.{k}", depth + 1, seen)
                if r:
                    return r
        else:
            for i, v in enumerate(value):
                r = _json_path_error(v, f"{path}[{i}]", depth + 1, seen)
                if r:
                    return r
    finally:
        seen.discard(id(value))
    return None


def _no_default(o):
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(value):
    """json.dumps(value, allow_nan=False) through the C encoder only."""
    enc = _c_make_encoder({}, _no_default, _c_str, None, ": ", ", ", False, False, False)
    return "".join(enc(value, 0))


def serialise(value):
    """(text, None) or (None, RESULT_INVALID report)."""
    if value is _Unset:
        return '{"ok":true}', None
    try:
        return dumps({"ok": True, "result": value}), None
    except (TypeError, ValueError, RecursionError, OverflowError) as e:
        where = _json_path_error(value) or ("$", "not JSON-serialisable: " + (str(e) or type(e).__name__))
        return None, error("RESULT_INVALID", f"the result is not valid JSON at {where[0]}: {where[1]}",
                           {"path": where[0], "reason": where[1]})


def _user_traceback(exc, lines):
    """Python's traceback text with only the job's own frames."""
    out = ["Traceback (most recent call last):\n"]
    tb = exc.__traceback__
    last, repeats, n_hidden = None, 0, 0
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == JOB_FILE:
            ln = tb.tb_lineno
            key = (ln, code.co_name)
            repeats = repeats + 1 if key == last else 0
            if repeats < 3:  # as Python does: a recursion bomb prints 3 entries, then a count
                if repeats == 0 and last is not None and n_hidden:
                    out.append(f"  [Previous line repeated {n_hidden} more times]\n")
                if repeats == 0:
                    n_hidden = 0
                out.append(f'  File "{JOB_FILE}", line {ln}, in {code.co_name}\n')
                if 0 < ln <= len(lines) and lines[ln - 1].strip():
                    out.append(f"    {lines[ln - 1].strip()}\n")
            else:
                n_hidden += 1
            last = key
        tb = tb.tb_next
    if last is not None and n_hidden:
        out.append(f"  [Previous line repeated {n_hidden} more times]\n")
    try:
        msg = str(exc)
    except Exception:
        msg = "<unprintable>"
    name = type(exc).__qualname__
    out.append(f"{name}: {msg}\n" if msg else f"{name}\n")
    return "".join(out), name, msg


def _finish(text, report_fd):
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    data = text.encode()
    while data:
        n = posix.write(report_fd, data)
        data = data[n:]


_TRUSTED_FILES = {}


def _trusted_files(granted):
    """Stdlib files whose compile/exec is trusted: they build code only from
    validated identifiers (dataclasses' methods, namedtuple's __new__,
    multiprocessing.sharedctypes' synchronized properties). Kept once made:
    the stdlib's place does not change in a process (warm mode: the zygote's
    warm-up makes them, every job reuses them)."""
    mp = "multiprocessing" in granted
    files = _TRUSTED_FILES.get(mp)
    if files is None:
        # encodings is a package every interpreter has loaded: LIB/encodings/__init__.py.
        lib = sys.modules["encodings"].__file__.rpartition("/")[0].rpartition("/")[0]
        names = ["dataclasses.py", "collections/__init__.py"]
        if mp:
            names.append("multiprocessing/sharedctypes.py")
        files = _TRUSTED_FILES[mp] = frozenset(lib + "/" + f for f in names)
    return files


def _norm_dist(name):
    out, sep = [], False
    for c in name.lower():
        if c in "-_.":
            sep = True
            continue
        if sep and out:
            out.append("_")
        sep = False
        out.append(c)
    return "".join(out)


def installed_distributions(paths=None):
    """Normalised names (PEP 503) of the distributions on sys.path, from
    their *.dist-info / *.egg-info entries; importlib.metadata would pull in
    email, zipfile and friends for the same answer."""
    names = set()
    for d in paths if paths is not None else sys.path:
        try:
            entries = posix.listdir(d or ".")
        except OSError:
            continue
        for e in entries:
            if e.endswith((".dist-info", ".egg-info")):
                names.add(_norm_dist(e.rpartition(".")[0].partition("-")[0]))
    return names


def missing_packages(requested, paths=None):
    if not requested:
        return []
    have = installed_distributions(paths)
    return [p for p in requested if _norm_dist(str(p).partition("==")[0].strip()) not in have]


# Warm mode: what a policy makes of every job without grants (the checker's
# sets, the whole guard: builtins, module proxies), built once in the zygote
# by prepare_policy() and taken by the one job its fork runs, if the job's
# bootstrap carries that same python section: a job of any other policy, or
# with grants, builds its own as a cold job does.
_PREPARED = []


class _Prepared:
    def __init__(self, python):
        self.python = python
        self.admitted = frozenset(list(python.get("allowed_imports") or ()) + ["__future__"])
        self.denied = frozenset(python.get("denied_builtins") or ())
        self.guard = pycell_guard.prepare_guard(python)


def prepare_policy(python):
    """Zygote: builds the next job's policy constants (run_job takes them)."""
    _PREPARED[:] = [_Prepared(python)]


def _take_prepared(python, requested):
    if not _PREPARED or requested:
        return None
    prep = _PREPARED.pop()
    return prep if prep.python == python else None


def run_job(boot, report_fd, in_sandbox=False):
    """Run one job; returns the report dict (final_answer and tripwires write
    to report_fd themselves and exit the process)."""
    code = boot.get("code") or ""
    checks = bool(boot.get("checks", True))
    python = boot.get("python") or {}
    requested = boot.get("imports") or ()
    granted = [m for m in requested if isinstance(m, str)]
    input_data = boot.get("input")

    tree, syn = pycell_check.parse(code)
    if syn is not None:
        where = f"line {syn['line']}: " if syn["line"] else ""
        return error("SYNTAX_ERROR", where + syn["message"], syn)
    missing = missing_packages(boot.get("packages") or ())
    if missing:
        return error("PACKAGE_UNAVAILABLE", "not installed in the rootfs: " + ", ".join(missing),
                     {"packages": missing})
    # Off while the shim started and parsed (pycell_shim.py); on before the
    # job's modules are imported and its code runs. What exists by now (the
    # interpreter's start, the shim) lives as long as the process: frozen,
    # the job's older-generation collections never walk it (`import json`
    # ~0.5-1 ms less; bare python3 pays that walk).
    gc.freeze()
    gc.enable()
    guard = None
    if checks:
        prep = _take_prepared(python, requested)
        if prep is not None:  # no grants: nothing to check about them
            violations = []
            admitted, denied = prep.admitted, prep.denied
        else:
            allowed_imports = list(python.get("allowed_imports") or ())
            violations = pycell_check.check_imports(granted, allowed_imports,
                                                    python.get("grantable_imports") or ())
            granted = [m for m in granted if "import_not_grantable:" + m not in violations]
            admitted = allowed_imports + granted + [m + ".*" for m in granted] + ["__future__"]
            denied = python.get("denied_builtins") or ()
        found, imported = pycell_check.check(tree, admitted, denied)
        tree = None  # its memory goes to the job's imports and data
        violations = sorted(set(violations) | set(found))
        if violations:
            return error("SECURITY_ERROR", "the code breaks the policy: " + ", ".join(violations),
                         {"violations": violations, "layer": "ast"})
        if prep is not None:
            guard = prep.guard
            guard.report_fd = report_fd
        else:
            guard = pycell_guard.Guard(python, granted, report_fd)
        # input() returns the input's JSON text: in a sandbox read when asked
        # from stdin, the sealed memfd the supervisor wrote it to (encoding
        # it here cost a 70 KB input 0.7 ms whether or not input() was used).
        guard.input_text = dumps(input_data) if boot.get("has_input") and not in_sandbox else None
        guard.input_fd = 0 if boot.get("has_input") and in_sandbox else None
        # Import what the code names (all allowed by now) and the grants before
        # the hook is armed: an allowed module's import-time set-up is trusted
        # (pandas runs platform.processor(), numpy loads ctypes); what the job
        # then does with it is not.
        n_modules = len(sys.modules)
        for m in granted + imported:
            try:
                __import__(m)
            except Exception:  # the job's own import raises it again, in its frame
                pass
        if len(sys.modules) != n_modules:
            # A module first imported here may have added itself to a parent a
            # prepared guard has already proxied: proxies are made again, on
            # the job's imports, as a fresh guard makes them.
            guard.proxies.clear()
    try:
        # From the source, which gave the tree checked above: compiling the
        # tree would convert every node back to the C AST first.
        compiled = compile(code, JOB_FILE, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        return error("SYNTAX_ERROR", f"line {getattr(e, 'lineno', None)}: {getattr(e, 'msg', str(e))}",
                     {"line": getattr(e, "lineno", None), "offset": getattr(e, "offset", None),
                      "message": getattr(e, "msg", str(e))})

    main = type(sys)("__main__")
    g = main.__dict__
    g["__builtins__"] = guard.builtins_dict() if guard else __builtins__
    g["input_data"] = input_data

    token = pycell_guard.ReportToken() if guard else None

    def claim():
        # A tripwire (here or in a forked worker) has reported: stay silent.
        if token is not None and not token.claim():
            posix._exit(1)

    def final_answer(value=None):
        text, bad = serialise(value)
        claim()
        _finish(text if bad is None else dumps(bad), report_fd)
        posix._exit(0 if bad is None else 1)

    g["final_answer"] = final_answer
    if guard:
        # multiprocessing: fork, kill its workers, unpickle tasks, shared memory
        # (mmap'd arenas in /dev/shm, ctypes-backed Value/Array: "ctypes.*").
        allow = (("os.fork", "os.kill", "os.truncate", "mmap.__new__", "pickle.find_class", "ctypes.*")
                 if "multiprocessing" in granted else ())
        hook, arm = pycell_guard.make_audit_hook(report_fd, _trusted_files(granted), allow, in_sandbox, token)
        sys.addaudithook(hook)
    sys.modules["__main__"] = main  # dataclasses, enum, pickle-by-name find the job's globals
    lines = code.splitlines()
    try:
        if guard:
            arm(compiled)
        exec(compiled, g)
    except SystemExit as e:
        if e.code is None or e.code == 0:
            pass
        else:
            raise
    except BaseException as e:  # noqa: B902 - every failure of the job is reported
        text, name, msg = _user_traceback(e, lines)
        claim()
        sys.stderr.write(text)
        return error("RUNTIME_ERROR", f"{name}: {msg}" if msg else name,
                     {"type": name, "message": msg, "traceback": text})
    text, bad = serialise(g.get("result", _Unset))
    claim()
    return bad if bad is not None else {"text": text}


def _read_fd(fd):
    chunks = []
    while True:
        b = posix.read(fd, 1 << 16)
        if not b:
            break
        chunks.append(b)
    posix.close(fd)
    return b"".join(chunks)


def report_text(report):
    """The report's text for fd 4: the one run_job prepared, else its JSON."""
    return report.pop("text") if "text" in report else dumps(report)


def main():
    try:
        boot = loads(_read_fd(3).decode() or "{}")
    except (OSError, ValueError) as e:
        sys.stderr.write(f"pycell shim: unreadable bootstrap document: {e}\n")
        posix._exit(1)
    report = run_job(boot, 4, in_sandbox=True)
    _finish(report_text(report), 4)
    posix.close(4)
    posix._exit(0 if report.get("ok", True) else 1)

