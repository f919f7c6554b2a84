"""pycell shim entry point (DESIGN.md 3, 5.8).

pycell-init runs this file as __main__ with
  fd 0  the job's input as JSON        fd 1/2  captured stdout/stderr
  fd 3  the bootstrap document (JSON)  fd 4    the result channel
It stays tiny on purpose: a script is compiled on every run, while the
modules it imports (pycell_job, pycell_check, pycell_guard) can come from
__pycache__. -I leaves this directory off sys.path, so add it by hand.
"""
import gc
import sys

# No collections while the shim imports and parses the code (7 on import
# alone): nothing it makes is garbage yet. run_job turns it back on.
if __name__ == "__main__":
    gc.disable()

_here = __file__.rpartition("/")[0] or "."
if _here not in sys.path:
    sys.path.insert(0, _here)

from pycell_job import main, run_job  # noqa: E402,F401 - run_job: host-side tests import it from here

if __name__ == "__main__":
    main()
