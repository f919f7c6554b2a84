"""pycell_check's dispatch by node class (_VISITORS) reaches every visit_X
method of the checker, each for the _ast class named X: a visitor left out of
it would silently never run."""
import _ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime" / "shim"))

import pycell_check  # noqa: E402


def test_every_visitor_is_dispatched_for_its_node_class():
    methods = {n[6:]: f for n, f in vars(pycell_check.Checker).items() if n.startswith("visit_")}
    assert {cls.__name__ for cls in pycell_check._VISITORS} == set(methods)
    for cls, f in pycell_check._VISITORS.items():
        assert getattr(_ast, cls.__name__) is cls and methods[cls.__name__] is f


def test_a_node_class_without_visitor_is_walked_generically():
    tree, _ = pycell_check.parse("x = [y.__class__ for y in z]")  # ListComp, comprehension: no visitor
    assert pycell_check.check_code(tree, [], []) == ["attr_not_allowed:__class__"]
