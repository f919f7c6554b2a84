"""The escape catalogue (tests/escapes/catalogue.py) through the real binary:
every technique is refused with SECURITY_ERROR naming the violation, or is
shown harmless by its concrete outcome; each entry names the shim layer
that stopped it, and the SECURITY_ERROR's details agree where they say."""
import sys
from collections import Counter

import pytest

from conftest import REPO, run_job

sys.path.insert(0, str(REPO / "tests" / "escapes"))
from catalogue import CATALOGUE  # noqa: E402

LOOSE = str(REPO / "tests" / "escapes" / "loose.json")
LAYERS = {"ast", "builtins", "proxy", "audit"}


def test_catalogue_is_big_enough_and_covers_every_layer():
    assert len(CATALOGUE) >= 40
    assert len({e[0] for e in CATALOGUE}) == len(CATALOGUE), "duplicate names"
    layers = Counter(e[2] for e in CATALOGUE)
    assert set(layers) == LAYERS, layers


@pytest.mark.parametrize("name,code,layer,expect,extra", CATALOGUE, ids=[e[0] for e in CATALOGUE])
def test_escape(name, code, layer, expect, extra):
    extra = dict(extra)
    args = ("--policy", LOOSE) if extra.pop("policy", None) == "loose" else ()
    r = run_job({"code": code, **extra}, *args, timeout=60)
    assert r.json is not None, r
    kind, what = expect
    if kind == "ok":
        assert r.json["status"] == "ok", r
        assert r.json["result"] == what, r
        return
    assert r.code == kind, r
    details = r.json["error"]["details"]
    if kind == "SECURITY_ERROR":
        assert what in details["violations"], r
        assert details.get("layer") == ("audit" if layer == "audit" else "ast"), r
        assert r.json["result"] is None
    elif kind == "RUNTIME_ERROR":
        assert details["type"] == what, r
    elif kind == "SYNTAX_ERROR":
        assert details["line"] == what, r
