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
    python = boot.get("python") or {}
    for name in python.get("allowed_imports") or ():
        if isinstance(name, str) and name.isidentifier():
            try:
                __import__(name)
            except Exception:  # an unavailable module fails in the job, as it would cold
                pass


_preimport()
# Everything the zygote made so far goes to the permanent generation: the
# collector in a job never walks (and so never copy-on-write faults) it.
import gc  # noqa: E402
gc.collect()
gc.freeze()
try:
    os.close(4)  # the zygote reports nothing on a result pipe
except OSError:
    pass
if _pycell_zygote.serve():
    pycell_job.main()  # writes the report on fd 4 and exits
    os._exit(1)
os._exit(0)
