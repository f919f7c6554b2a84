"""pycell static check: walks every field of every AST node of the job's code
and names each policy violation (DESIGN.md 5.8). Defence in depth: the kernel
layers are the boundary; this layer refuses most attacks early and by name.

Reason strings (the contract the tests and callers rely on):
  import_not_allowed:X        import of a module outside allowed + granted (relative: ".X");
                              "pkg.*" in allowed_imports admits pkg's submodules, a grant
                              of pkg admits pkg and pkg.*
  import_not_grantable:X      the job's `imports` asks for X, the policy cannot grant it
  name_not_allowed:X          a denied builtin, or any dunder name, used as a name
  attr_not_allowed:X          a dunder or frame/code attribute, also as a constant string
                              (getattr(x, "__class__"), attrgetter("gi_frame"), match kwargs)
  attr_not_constant:F         getattr/setattr/delattr/hasattr with a computed name
  format_attr_not_allowed     a literal format string reaching attributes or indexes
                              ("{0.__class__}".format(x)), or any .format_map()
  match_class_pattern_not_allowed
                              positional sub-patterns of a user class pattern: they
                              read attributes named by __match_args__, which can be computed
Only the C modules _ast and _string are used, not ast.py (which pulls in enum
and contextlib): the shim's start-up stays cheap.
"""
import _ast as ast
import _string

# Dunder attributes that are plain data and lead nowhere; everything else
# dunder is refused. `super().__init__(...)` and friends are method delegation
# inside a user class and are allowed on a literal super() receiver only.
SAFE_DUNDER_ATTRS = frozenset(("__name__", "__qualname__", "__doc__"))
SUPER_DUNDER_ATTRS = frozenset((
    "__init__", "__init_subclass__", "__post_init__", "__repr__", "__str__", "__format__", "__eq__", "__ne__",
    "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__contains__",
    "__getitem__", "__setitem__", "__delitem__", "__missing__", "__enter__", "__exit__", "__call__", "__bool__",
    "__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__neg__", "__abs__",
))
# Dunder names a program may bind or read; they hold data only.
SAFE_DUNDER_NAMES = frozenset(("__name__", "__slots__", "__all__", "__doc__", "__hash__"))
SAFE_DUNDER_STRINGS = frozenset(("__main__", "__name__", "__qualname__", "__doc__"))
# Frame, code, traceback and generator internals: each one is a step of a
# known walk from an ordinary object to a frame's globals or builtins.
FRAME_ATTRS = frozenset((
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "cr_origin", "ag_frame",
    "ag_code", "ag_await", "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "f_trace", "f_lasti",
    "tb_frame", "tb_next", "tb_lasti", "co_code", "co_consts", "co_names", "co_varnames", "co_filename",
    "co_lnotab", "co_linetable", "func_globals", "func_code", "func_closure", "func_defaults", "im_func",
    "im_self", "im_class", "cell_contents", "mro_entries",
))
ATTR_FUNCS = frozenset(("getattr", "setattr", "delattr", "hasattr"))
SELF_MATCH_TYPES = frozenset(("bool", "bytearray", "bytes", "dict", "float", "frozenset", "int", "list", "set",
                              "str", "tuple"))


def is_dunder(name):
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def attr_reason(name, on_super=False):
    """The violation for reading attribute `name`, or None when it is fine."""
    if is_dunder(name):
        if name in SAFE_DUNDER_ATTRS or (on_super and name in SUPER_DUNDER_ATTRS):
            return None
        return "attr_not_allowed:" + name
    if name in FRAME_ATTRS:
        return "attr_not_allowed:" + name
    return None


def string_reasons(s):
    """A constant string that names a dunder or frame attribute, alone or as a
    dotted chain ("__class__.__mro__" for attrgetter), is refused: strings are
    how attribute names reach getattr-like library functions."""
    if len(s) > 200 or not s.replace(".", "").replace("_", "a").isalnum():
        return ()
    out = []
    for part in s.split("."):
        if part in SAFE_DUNDER_STRINGS:
            continue
        r = attr_reason(part)
        if r:
            out.append(r)
    return out


def format_reasons(fmt, depth=0):
    """Violations of a str.format template: any field with .attr or [index]
    (nested format specs included) is format_attr_not_allowed, and the
    attributes it names are checked like attribute access."""
    out = []
    try:
        for _lit, field, spec, _conv in _string.formatter_parser(fmt):
            if field is not None and ("." in field or "[" in field):
                out.append("format_attr_not_allowed")
                _first, rest = _string.formatter_field_name_split(field)
                for is_attr, key in rest:
                    if is_attr:
                        out.append(attr_reason(key))
            if spec and "{" in spec and depth < 3:
                out.extend(format_reasons(spec, depth + 1))
    except ValueError:
        pass  # str.format raises on it before touching anything
    return [r for r in out if r]


def import_allowed(name, allowed):
    """`name` or, for a submodule, a parent listed as "parent.*"."""
    if name in allowed:
        return True
    parts = name.split(".")
    return any(".".join(parts[:i]) + ".*" in allowed for i in range(1, len(parts)))


def _import_reason(name, allowed):
    return None if import_allowed(name, allowed) else "import_not_allowed:" + name


class Checker:
    def __init__(self, allowed, denied):
        self.allowed = allowed
        self.denied = denied
        self.found = set()
        self.imports = set()  # absolute module names the code imports

    def visit(self, node):
        f = _VISITORS.get(type(node))
        if f is None:
            self.generic_visit(node)
        else:
            f(self, node)

    def generic_visit(self, node):
        AST = ast.AST
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, AST):
                        self.visit(item)
            elif isinstance(value, AST):
                self.visit(value)

    def add(self, reason):
        if reason:
            self.found.add(reason)

    # generic_visit walks every field of every node, so default arguments,
    # annotations, decorators, class keywords, f-string specs, match guards and
    # except* handlers are all reached without being listed here.

    def visit_Import(self, node):
        for alias in node.names:
            self.add(_import_reason(alias.name, self.allowed))
            self.imports.add(alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        if node.level:
            self.add("import_not_allowed:" + "." * node.level + mod)
        elif mod != "__future__":
            self.add(_import_reason(mod, self.allowed))
            self.imports.add(mod)
        self.generic_visit(node)

    def visit_Name(self, node):
        self.check_name(node.id)

    def check_name(self, name):
        if name in self.denied:
            self.add("name_not_allowed:" + name)
        elif is_dunder(name) and name not in SAFE_DUNDER_NAMES:
            self.add("name_not_allowed:" + name)

    def visit_Attribute(self, node):
        on_super = (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                    and node.value.func.id == "super")
        self.add(attr_reason(node.attr, on_super))
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            for r in string_reasons(node.value):
                self.add(r)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Name) and f.id in ATTR_FUNCS:
            if len(node.args) < 2 or not (isinstance(node.args[1], ast.Constant)
                                          and isinstance(node.args[1].value, str)):
                self.add("attr_not_constant:" + f.id)
        if isinstance(f, ast.Attribute):
            if f.attr == "format_map":
                self.add("format_attr_not_allowed")
            elif f.attr == "format" and isinstance(f.value, ast.Constant) and isinstance(f.value.value, str):
                for r in format_reasons(f.value.value):
                    self.add(r)
        self.generic_visit(node)

    def _def(self, node):
        # Defining a method called __init__ or __eq__ is not access; the name
        # itself is fine, everything inside the definition is walked.
        if node.name in self.denied:
            self.add("name_not_allowed:" + node.name)
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _def

    def visit_arg(self, node):
        self.check_name(node.arg)
        self.generic_visit(node)

    def visit_keyword(self, node):
        if node.arg and is_dunder(node.arg) and node.arg not in SAFE_DUNDER_NAMES:
            self.add("name_not_allowed:" + node.arg)
        self.generic_visit(node)

    def visit_alias(self, node):
        # `from m import x as y` binds y; `import a.b` binds a.
        for name in (node.asname, node.name if node.name != "*" else None):
            if name and "." not in name:
                self.check_name(name)

    def _bound(self, node):
        for field in ("name", "rest"):
            name = getattr(node, field, None)
            if isinstance(name, str):
                self.check_name(name)
        self.generic_visit(node)

    visit_ExceptHandler = visit_MatchAs = visit_MatchStar = visit_MatchMapping = _bound

    def visit_Global(self, node):
        for name in node.names:
            self.check_name(name)

    visit_Nonlocal = visit_Global

    def visit_MatchClass(self, node):
        for name in node.kwd_attrs:
            self.add(attr_reason(name))
        if node.patterns and not (isinstance(node.cls, ast.Name) and node.cls.id in SELF_MATCH_TYPES
                                  and len(node.patterns) == 1):
            self.add("match_class_pattern_not_allowed")
        self.generic_visit(node)


# visit()'s dispatch: the visit_X method of each node class X, found by the
# class itself. A getattr by a name made per node ("visit_" + name) missed
# CPython's type attribute cache every time (it is keyed by the name
# object), and in a warm job each miss wrote a slot of the zygote's copy of
# that cache: a page copied.
_VISITORS = {getattr(ast, name[6:]): f for name, f in vars(Checker).items()
             if name.startswith("visit_") and isinstance(getattr(ast, name[6:], None), type)}


def check_imports(requested, allowed_imports, grantable):
    return sorted({"import_not_grantable:" + str(m) for m in requested
                   if m not in grantable and m not in allowed_imports})


def check(tree, allowed, denied):
    """(violations sorted and deduplicated, modules the code imports)."""
    c = Checker(frozenset(allowed), frozenset(denied))
    c.visit(tree)
    return sorted(c.found), sorted(c.imports)


def check_code(tree, allowed, denied):
    """All violations in an already-parsed module, sorted and deduplicated."""
    return check(tree, allowed, denied)[0]


def parse(code):
    """(tree, None) or (None, syntax-error details)."""
    try:
        return compile(code, "<job>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True), None
    except SyntaxError as e:
        return None, {"line": e.lineno, "offset": e.offset, "message": e.msg}
    except (ValueError, MemoryError, RecursionError) as e:  # NUL bytes, absurd nesting
        return None, {"line": None, "offset": None, "message": str(e) or type(e).__name__}
