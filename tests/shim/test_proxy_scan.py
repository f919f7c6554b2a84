"""CI leak scan (issue 6, point 2): build the proxy of every allowlisted
module of every shipped policy and fail on any attribute that is a module,
a builtin the shim keeps from user code, or a callable from a module that
reaches the OS, the interpreter or the import system. A new entry here means
a new Python release or policy exposes something: review it, then either
hide it (policy module_attributes "-name") or add it to REVIEWED with why."""
import importlib
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "runtime" / "shim"))

import pycell_guard  # noqa: E402

DANGEROUS_HOMES = {
    "os", "posix", "sys", "subprocess", "builtins", "importlib", "ctypes", "_ctypes", "io", "codecs", "_codecs",
    "pickle", "_pickle", "marshal", "gc", "inspect", "socket", "_socket", "shutil", "pathlib", "tempfile", "glob",
    "fcntl", "signal", "_signal", "threading", "mmap", "resource", "select", "pty", "_posixsubprocess", "runpy",
    "types", "weakref", "_weakref", "copyreg", "atexit", "warnings", "_warnings", "tokenize", "linecache",
}
# Reviewed: each is a plain type or a type user code already reaches.
REVIEWED = {
    ("functools", "RLock"): "a lock; no OS access",
    ("csv", "StringIO"): "in-memory text buffer",
    ("enum", "MappingProxyType"): "read-only dict view",
    ("enum", "DynamicClassAttribute"): "a descriptor type",
    ("dataclasses", "FunctionType"): "type(lambda: 0) gives it anyway; no code object is reachable",
    ("typing", "WrapperDescriptorType"): "a type, no constructor",
    ("typing", "MethodWrapperType"): "a type, no constructor",
    ("typing", "MethodDescriptorType"): "a type, no constructor",
    ("typing", "Text"): "is str",
    ("uuid", "int_"): "is int",
    ("uuid", "bytes_"): "is bytes",
}
REVIEWED_ANYWHERE = {"GenericAlias": "type(list[int]) gives it anyway"}
KEPT_FROM_USER = ("eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals",
                  "locals", "vars", "breakpoint", "input", "memoryview", "dir", "help")


def policies():
    for name in ("default", "strict", "datasci"):
        path = REPO / "policy" / f"{name}.json"
        if path.exists():
            yield name, json.loads(path.read_text())["python"]


CASES = [(pname, mod) for pname, py in policies() for mod in py["allowed_imports"] if not mod.endswith(".*")]


@pytest.mark.parametrize("pname,modname", CASES, ids=[f"{p}:{m}" for p, m in CASES])
def test_no_leak(pname, modname):
    py = dict(policies())[pname]
    try:
        importlib.import_module(modname)
    except ImportError:
        pytest.skip(f"{modname} is not installed on this host")
    proxy = pycell_guard.Guard(py, [], 1).proxy(sys.modules[modname])
    leaks = []
    for k, v in vars(proxy).items():
        if k.startswith("_"):
            continue
        if isinstance(v, type(sys)) and not isinstance(v, pycell_guard.ReadOnlyModule):
            leaks.append(f"{k}: module")
        elif any(v is getattr(__builtins__ if isinstance(__builtins__, dict) else vars(__builtins__), "get")(b)
                 for b in KEPT_FROM_USER):
            leaks.append(f"{k}: builtin kept from user code")
        elif callable(v) and getattr(v, "__module__", None) in DANGEROUS_HOMES and (modname, k) not in REVIEWED \
                and k not in REVIEWED_ANYWHERE:
            leaks.append(f"{k}: {v.__module__}.{getattr(v, '__qualname__', k)}")
    assert not leaks, f"{modname} proxy leaks: {leaks}"


def test_operator_and_string_gadgets_are_hidden():
    py = dict(policies())["default"]
    g = pycell_guard.Guard(py, [], 1)
    import operator
    import string
    assert not hasattr(g.proxy(operator), "attrgetter") and not hasattr(g.proxy(operator), "methodcaller")
    assert not hasattr(g.proxy(string), "Formatter") and hasattr(g.proxy(string), "Template")
