"""pycell warm-mode entry point: the zygote's script (docs/warm.md).

pycell-init --zygote runs this file as __main__ with the C audit hook and
the exec filter already in place. It imports the shim and the policy's
allowed modules (trusted stdlib code from the read-only rootfs), then hands
control to _pycell_zygote.serve(), which returns True only in a freshly
forked job process: that process already sits in its own namespaces with
its fds on 0..4, no capabilities and the policy's seccomp filter, and runs
the shim exactly as a cold job does. The zygote itself never runs job code.

fd 3 at start is the zygote's bootstrap: {"python": the policy's python section}.
"""
import os
import sys

_here = __file__.rpartition("/")[0] or "."
if _here not in sys.path:
    sys.path.insert(0, _here)

import pycell_job  # noqa: E402
import _pycell_zygote  # noqa: E402  - built into pycell-init (runtime/init/zygote.c)


def _preimport():
    try:
        data = os.read(3, 1 << 20)
        os.close(3)
        boot = pycell_job.loads(data.decode() or "{}")
    except (OSError, ValueError):
        return
    _boot.update(boot)
    python = boot.get("python") or {}
    for name in python.get("allowed_imports") or ():
        if isinstance(name, str) and name.isidentifier():
            try:
                __import__(name)
            except Exception:  # an unavailable module fails in the job, as it would cold
                pass


def _warm_up():
    """Runs the shim's analysis once on a fixed snippet, so each job's first
    parse, check, compile and guard set-up find CPython's lazy state (type
    attribute caches, the parser's and compiler's tables) already built: in a
    fresh fork the first call was ~0.5 ms dearer than the second. Only the
    shim's own code runs, on a constant; nothing is executed, and no audit
    hook is added (that happens per job)."""
    try:
        python = _boot.get("python") or {}
        allowed = [m for m in python.get("allowed_imports") or () if isinstance(m, str) and m.isidentifier()]
        snippet = "".join(f"import {m}\n" for m in allowed) + "x = [i * 2 for i in range(3)]\nresult = {'x': x}\n"
        tree, _ = pycell_job.pycell_check.parse(snippet)
        pycell_job.pycell_check.check(tree, allowed + ["__future__"], python.get("denied_builtins") or ())
        compile(tree, pycell_job.JOB_FILE, "exec", dont_inherit=True)
        guard = pycell_job.pycell_guard.Guard(python, [], 4)
        guard.builtins_dict()
        for m in allowed:
            if m in sys.modules:
                guard.proxy(sys.modules[m])
        pycell_job.serialise({"a": [1, 2.5, "x", None, True]})
        pycell_job.missing_packages([])
        pycell_job._trusted_files([])
    except Exception:  # a warm-up only: the job does all of it again, and reports
        pass


def _prepare():
    """What the policy makes of every job without grants (the checker's
    sets, the guard with its builtins and module proxies: pycell_job.
    prepare_policy), built once here, where a job process's fork finds it
    instead of building its own (a copy-on-write fault for each zygote page
    that building writes). Made last, once every module is imported: a
    proxy is a snapshot of its module."""
    python = _boot.get("python") or {}
    try:
        pycell_job.prepare_policy(python)
        # A job with grants builds its own guard, but takes these builtins.
        pycell_job.pycell_guard.prepare_builtins(python.get("denied_builtins") or ())
    except Exception:  # then each job builds its own, as cold
        pass


def _cache_distributions():
    """The rootfs is read-only and a zygote is replaced when it changes, so
    the distributions on sys.path are known once: each job's
    PACKAGE_UNAVAILABLE check then costs no directory listing."""
    have = frozenset(pycell_job.installed_distributions())
    real = pycell_job.installed_distributions

    def installed_distributions(paths=None):
        return set(have) if paths is None else real(paths)

    pycell_job.installed_distributions = installed_distributions


def _probe():
    """The pages every job process writes: a fork runs the shim's job runner
    on a constant job, as each job's process does whatever its code
    (bootstrap, parse, check, the prepared guard, builtins, audit hook,
    compile, exec, result), and reports the pages it wrote
    (runtime/init/prefault.c)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            boot = pycell_job.loads(pycell_job.dumps({
                "code": "x = 1", "has_input": False, "input": None, "python": _boot.get("python") or {},
                "checks": True, "imports": [], "packages": []}))
            report = pycell_job.run_job(boot, 4, in_sandbox=True)  # no report: fd 4 is closed
            pycell_job.report_text(report)  # made as main() makes it, not written
            data = _pycell_zygote.written_pages()
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    data = pycell_job._read_fd(r)
    os.waitpid(pid, 0)
    return data


def _malloc_stats():
    """sys._debugmallocstats()'s report (CPython writes it on C stderr)."""
    r, w = os.pipe()  # the report is a few KiB: the pipe holds it
    saved = os.dup(2)
    try:
        os.dup2(w, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(w)
    return pycell_job._read_fd(r).decode(errors="replace")


def _fill_free_blocks():
    """Takes up the zygote's free small blocks, so that what a job
    allocates lands in fresh memory instead of in the holes its zygote left
    in pages all over the heap, each of which the job copies on its first
    write. The holes: CPython's free lists of dicts, lists, floats and
    tuples, and the free blocks of partly used pymalloc pools (read from
    sys._debugmallocstats: "class size num_pools blocks_in_use
    avail_blocks"). Each is filled with an object nothing ever touches
    again: object() for 16-byte blocks, floats for 32, bytes of the block's
    size above; none is tracked by the collector. A report this does not
    recognise (another CPython) fills nothing. Costs the zygote the blocks
    it had free (~0.5 MB here), shared by all its jobs."""
    keep = []
    for line in _malloc_stats().split("\n"):
        f = line.split()
        if len(f) < 4 or f[1] != "free" or not f[0].isdigit():
            continue
        n = int(f[0])
        if f[2] == "PyDictObjects":
            keep.extend({} for _ in range(n))
        elif f[2] == "PyListObjects":
            keep.extend([] for _ in range(n))
        elif f[2] == "PyFloatObjects":
            keep.extend(float(i) + 0.5 for i in range(n))
        elif f[3] == "PyTupleObjects" and f[2].endswith("-sized") and f[2][:-6].isdigit():
            keep.extend(tuple([None] * int(f[2][:-6])) for _ in range(n))
    for _ in range(3):  # what filling itself allocated, until nothing is left
        avail = 0
        for line in _malloc_stats().split("\n"):
            f = line.split()
            if len(f) != 5 or not all(x.isdigit() for x in f) or int(f[1]) != 16 * (int(f[0]) + 1):
                continue
            size, n = int(f[1]), int(f[4])
            avail += n
            if size == 16:
                keep.extend(object() for _ in range(n))
            elif size == 32:
                keep.extend(float(i) + 0.25 for i in range(n))
            else:  # a bytes object is 33 bytes and its length
                keep.extend(bytes(size - 33) for _ in range(n))
        if not avail:
            break
    return keep


_boot = {}
_preimport()
_cache_distributions()
_warm_up()
_prepare()
# Everything the zygote made so far goes to the permanent generation: the
# collector in a job never walks (and so never copy-on-write faults) it.
import gc  # noqa: E402
gc.collect()
try:
    _filler = _fill_free_blocks()
except (OSError, ValueError, AttributeError):  # no report: jobs fill the holes themselves
    pass
gc.freeze()
try:
    os.close(4)  # the zygote reports nothing on a result pipe
except OSError:
    pass
try:
    _pycell_zygote.prefault(_probe())
except (OSError, ValueError):  # no list: each job process faults its pages in itself
    pass
if _pycell_zygote.serve():
    pycell_job.main()  # writes the report on fd 4 and exits
    os._exit(1)
os._exit(0)
