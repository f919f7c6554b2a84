"""pycell_warm._fill_free_blocks: the zygote takes up its free small blocks
so that a job's allocations land in fresh memory. Run on the host's CPython
(the rootfs's release): if its sys._debugmallocstats report changed shape,
the fill would silently do nothing, and this says so."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "runtime" / "shim"

# pycell_warm runs the zygote at import: take just the two functions.
RUNNER = r"""
import ast, gc, os, sys
sys.path.insert(0, sys.argv[1])
import pycell_job
src = open(os.path.join(sys.argv[1], "pycell_warm.py")).read()
ns = {"os": os, "sys": sys, "pycell_job": pycell_job}
mod = ast.parse(src)
mod.body = [n for n in mod.body if isinstance(n, ast.FunctionDef) and n.name in ("_malloc_stats", "_fill_free_blocks")]
exec(compile(mod, "pycell_warm.py", "exec"), ns)

def free_lists(text):
    return {" ".join(l.split()[2:4]): int(l.split()[0]) for l in text.split("\n")
            if len(l.split()) > 3 and l.split()[1] == "free" and l.split()[0].isdigit()}

junk = [{} for _ in range(50)] + [[] for _ in range(50)] + [float(i) for i in range(50)]
del junk  # fills the free lists
before = free_lists(ns["_malloc_stats"]())
filler = ns["_fill_free_blocks"]()
after = free_lists(ns["_malloc_stats"]())
print(len(filler), sum(gc.is_tracked(o) for o in filler if not isinstance(o, (list, tuple))),
      before.get("PyDictObjects *", 0), after.get("PyDictObjects *", 0),
      before.get("PyListObjects *", 0), after.get("PyListObjects *", 0))
"""


def test_the_fill_recognises_this_cpythons_report_and_takes_the_free_lists():
    p = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", RUNNER, str(SHIM)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    n, tracked, dicts_before, dicts_after, lists_before, lists_after = map(int, p.stdout.split())
    assert n > 1000 and tracked == 0
    assert dicts_before > 10 and dicts_after < dicts_before
    assert lists_before > 10 and lists_after < lists_before


def test_the_fill_runs_before_the_freeze():
    # after gc.collect() (which frees), before gc.freeze() (the lists and
    # tuples it keeps go to the permanent generation) and the prefault probe
    body = ast.parse((SHIM / "pycell_warm.py").read_text()).body
    order = [ast.unparse(n) for n in body if isinstance(n, (ast.Expr, ast.Try))]
    pos = {k: next(i for i, s in enumerate(order) if k in s)
           for k in ("gc.collect()", "_fill_free_blocks()", "gc.freeze()", "_probe()")}
    assert pos["gc.collect()"] < pos["_fill_free_blocks()"] < pos["gc.freeze()"] < pos["_probe()"]
