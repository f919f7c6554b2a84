"""pycell shim (bootstrap placeholder): runs the job's code and reports the
result on fd 4. The full shim (AST checks, restricted builtins) replaces it."""
import json
import os
import sys
import traceback


def main():
    with os.fdopen(3, "rb") as f:
        boot = json.loads(f.read())
    report = {"ok": True}
    g = {"__name__": "__main__", "input_data": boot.get("input")}
    try:
        exec(compile(boot["code"], "<job>", "exec"), g)
        if "result" in g:
            report["result"] = g["result"]
    except SystemExit as e:
        raise
    except BaseException as e:
        traceback.print_exc()
        report = {"ok": False, "error": {"code": "RUNTIME_ERROR", "message": f"{type(e).__name__}: {e}",
                                         "details": {"type": type(e).__name__}}}
    finally:
        sys.stdout.flush()
    with os.fdopen(4, "w") as out:
        out.write(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)


main()
