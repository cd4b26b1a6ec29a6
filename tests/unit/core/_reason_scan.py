"""Find every reason code the project can emit, by reading its source (no imports of it).

Used by ``test_reasons.py``.  A *sink* is a place where a value becomes a reason code:

* ``reason=`` / ``reasons=`` keyword arguments of any call (BxError subclasses,
  ``Refusal``, ``Attempt``, audit ``entry.update(...)``, ...);
* ``"reason": ...`` / ``"reasons": ...`` in a dict display (audit entries, JSON output);
* ``default_reason = ...`` in a class body, and constructing a class of the error
  hierarchy without a ``reason=`` (it emits its inherited ``default_reason``);
* ``(REASON_KEY, ...)`` trailing-metadata pairs (``bxnode-reason``);
* members of the policy ``Reason`` enum;
* in Rego, ``reasons contains "..."`` and the ``"reasons": [...]`` of a ``decision``.

The value of a sink is resolved to literal codes: a string literal; a conditional
expression (both branches); a name assigned in the enclosing function or the module
(every assignment is resolved); a name imported from another module of ``node``; a
constant of ``node.core.reasons``; a ``Reason.X`` member.  A name that is a *parameter*
makes its function a forwarder: every call of that function (by name, anywhere under
``node/``) is then a sink for the argument at that position or keyword, and so is the
parameter's default.  Reading the code off an object (``exc.reason``, ``d.reasons``)
propagates a code some other sink emitted, so it resolves to nothing.  Anything else
(a call, a computed string) is a *problem*: the test fails, so a new dynamic code cannot
slip past the registry.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Problem", "Scan", "Site", "scan"]

#: Attributes that carry a code already emitted elsewhere (propagation, not emission).
_CARRIERS = frozenset({"reason", "reasons", "deny_reason"})
#: Calls that return codes emitted elsewhere (propagation, not emission).
CARRIER_CALLS = {
    "reason_of": "reads a peer's bxnode-reason off a gRPC error (node/client/failover.py)",
    "_codes": "validates the codes of a policy's decision document (scanned in the .rego)",
}
#: Calls whose ``reason=`` is an operator's free text (why an alert was withdrawn, a
#: follow-up denied, a hold placed), never a code.
#: (``dict.update`` is not one: audit entries are updated with codes.)
HUMAN_TEXT_CALLEES = frozenset({
    "deny", "desk_deny", "deny_followup", "hold", "release", "_decide", "_decide_pending",
    "_change", "_audited", "_reason", "FollowUpDecision", "FollowUpDecisionPayload",
    "DenyFollowUpRequest",
})
#: (module, enclosing function) whose ``"reason"`` dict entries are free text.
HUMAN_TEXT_DICTS = frozenset({
    ("node/retention/sweep.py", "_audited"),          # why a hold was placed
})
#: Classes that start the error hierarchy (node/core/errors.py).
_ROOT_ERROR = "BxError"
_CODE = re.compile(r"[a-z][a-z0-9_]*")
_LOGGERS = frozenset({"debug", "info", "warning", "error", "exception", "critical", "msg"})
_REGO_CONTAINS = re.compile(r'^\s*reasons\s+contains\s+"([^"]*)"', re.M)
_REGO_DECISION = re.compile(r'^(?:default\s+)?decision\s*:?=\s*\{.*?"reasons"\s*:\s*\[([^\]]*)\]',
                            re.M)


@dataclass(frozen=True, slots=True)
class Site:
    """One place a code is emitted: ``path:line``, the idiom, the gRPC status if known."""

    code: str
    path: str
    line: int
    idiom: str
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


@dataclass
class Scan:
    sites: list[Site] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: every string literal of the scanned sources (for "is it used anywhere")
    literals: set[str] = field(default_factory=set)

    def codes(self) -> set[str]:
        return {s.code for s in self.sites}


#: A policy's codes reach the peer through ``PolicyDenied``, which gives the refusal the
#: status its first code is registered with (node/core/errors.py): the scanner reads no
#: status at those sites; test_reasons.py checks PolicyDenied against the registry instead.
POLICY_STATUS: str | None = None


class _Unresolved(Exception):
    pass


@dataclass
class _Module:
    rel: str
    name: str  # dotted
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]
    consts: dict[str, list[ast.expr]]  # module-level assignments by name
    imports: dict[str, tuple[str, str]]  # local name -> (module, name)


@dataclass(frozen=True)
class _Forwarder:
    name: str  # the callee's name as called (function name, or class name for __init__)
    index: int  # positional index at call sites (self/cls excluded)
    param: str
    is_method: bool


@dataclass
class _Class:
    name: str
    bases: list[str]
    default_reason: str | None
    status: str | None


class _Scanner:
    def __init__(self, root: Path, registry_consts: dict[str, str],
                 enum_members: dict[str, str]) -> None:
        self.root = root
        self.registry_consts = registry_consts
        self.enum_members = enum_members  # "Reason.X" -> code
        self.out = Scan()
        self.modules: dict[str, _Module] = {}
        self.classes: dict[str, _Class] = {}
        self.forwarders: dict[_Forwarder, None] = {}
        self.done: set[_Forwarder] = set()
        self._status: str | None = None
        self.fw_status: dict[_Forwarder, str] = {}
        self.fw_status_param: dict[_Forwarder, int] = {}
        self.bare: list[tuple[_Module, ast.Call, str, str | None]] = []

    # --- loading ------------------------------------------------------------------------

    def load(self, paths: list[Path]) -> None:
        for p in paths:
            rel = p.relative_to(self.root).as_posix()
            tree = ast.parse(p.read_text(encoding="utf-8"), filename=rel)
            parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
            consts: dict[str, list[ast.expr]] = {}
            imports: dict[str, tuple[str, str]] = {}
            for st in tree.body:
                if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(
                        st.targets[0], ast.Name):
                    consts.setdefault(st.targets[0].id, []).append(st.value)
                elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and (
                        st.value is not None):
                    consts.setdefault(st.target.id, []).append(st.value)
            for n in ast.walk(tree):
                if isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                    for a in n.names:
                        imports[a.asname or a.name] = (n.module, a.name)
                elif isinstance(n, ast.Import):
                    for a in n.names:
                        imports[a.asname or a.name] = (a.name, "")
                elif isinstance(n, ast.Constant) and isinstance(n.value, str):
                    self.out.literals.add(n.value)
            dotted = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            self.modules[dotted] = _Module(rel, dotted, tree, parents, consts, imports)
            for n in ast.walk(tree):
                if isinstance(n, ast.ClassDef):
                    self._class(n)

    def _class(self, n: ast.ClassDef) -> None:
        bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute)
                 else "" for b in n.bases]
        default = status = None
        for st in n.body:
            if isinstance(st, (ast.Assign, ast.AnnAssign)):
                targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                if isinstance(st.value, ast.Constant) and isinstance(st.value.value, str):
                    if "default_reason" in names:
                        default = st.value.value
                    if "status" in names:
                        status = st.value.value
        # a class name defined twice (rare) keeps the first: the hierarchy is checked below
        self.classes.setdefault(n.name, _Class(n.name, bases, default, status))

    def is_error(self, name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == _ROOT_ERROR:
            return True
        c = self.classes.get(name)
        if c is None or name in seen:
            return False
        return any(self.is_error(b, seen | {name}) for b in c.bases)

    def inherited(self, name: str, what: str) -> str | None:
        c = self.classes.get(name)
        if c is None:
            return None
        v = c.default_reason if what == "default_reason" else c.status
        if v is not None:
            return v
        for b in c.bases:
            got = self.inherited(b, what)
            if got is not None:
                return got
        return None

    # --- emitting ---------------------------------------------------------------------

    def emit(self, m: _Module, node: ast.AST, code: str, idiom: str,
             status: str | None = None) -> None:
        line = getattr(node, "lineno", 0)
        if code == "":
            return  # "no reason": BxError falls back to its default, audit fields stay empty
        if _CODE.fullmatch(code) is None:
            self.problem(m, node, f"{idiom}: {code!r} is not a reason code ([a-z][a-z0-9_]*)")
            return
        self.out.sites.append(Site(code, m.rel, line, idiom, status))

    def problem(self, m: _Module, node: ast.AST, text: str) -> None:
        self.out.problems.append(Problem(m.rel, getattr(node, "lineno", 0), text))

    # --- resolution ---------------------------------------------------------------------

    def enclosing_functions(self, m: _Module, node: ast.AST) -> Iterator[ast.FunctionDef |
                                                                        ast.AsyncFunctionDef]:
        cur: ast.AST | None = m.parents.get(node)
        while cur is not None:
            if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield cur
            cur = m.parents.get(cur)

    def enclosing_class(self, m: _Module, fn: ast.AST) -> ast.ClassDef | None:
        p = m.parents.get(fn)
        return p if isinstance(p, ast.ClassDef) else None

    def resolve(self, m: _Module, e: ast.expr, depth: int = 0) -> list[str]:
        """The literal codes ``e`` can evaluate to; raise _Unresolved if unknown."""
        if depth > 12:
            raise _Unresolved("too deep")
        def r(x: ast.expr) -> list[str]:
            return self.resolve(m, x, depth + 1)

        if isinstance(e, ast.Constant):
            if e.value is None:
                return []
            if isinstance(e.value, str):
                return [e.value]
            raise _Unresolved(f"a {type(e.value).__name__} literal")
        if isinstance(e, ast.IfExp):
            return r(e.body) + r(e.orelse)
        if isinstance(e, ast.BoolOp):
            return [c for v in e.values for c in r(v)]
        if isinstance(e, (ast.Tuple, ast.List, ast.Set)):
            return [c for v in e.elts for c in r(v)]
        if isinstance(e, ast.Starred):
            return r(e.value)
        if isinstance(e, ast.Attribute):
            return self.resolve_attribute(m, e, depth)
        if isinstance(e, ast.Dict):
            return [c for v in e.values for c in r(v)]  # a table of codes: its values
        if isinstance(e, ast.Subscript):
            return r(e.value)  # reasons[0]: one of the codes reasons holds
        if isinstance(e, ast.BinOp):
            if isinstance(e.op, ast.Sub):
                return r(e.left)  # {...} - {"x"}: removing codes emits none
            return r(e.left) + r(e.right)
        if isinstance(e, ast.Name):
            return self.resolve_name(m, e, depth)
        if isinstance(e, ast.Call):
            f = e.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(
                f, ast.Attribute) else ""
            if fname in ("list", "tuple", "sorted", "str") and len(e.args) == 1:
                return r(e.args[0])
            if fname == "getattr" and len(e.args) == 3 and isinstance(
                    e.args[1], ast.Constant) and e.args[1].value in _CARRIERS:
                return r(e.args[2])
            if fname == "get" and isinstance(f, ast.Attribute) and e.args:
                # TABLE.get(k[, fallback]): the table's values; md.get(REASON_KEY, fallback):
                # the peer's code (carried), else ours
                table = [] if _is_metadata(f.value) else r(f.value)
                return table + (r(e.args[1]) if len(e.args) > 1 else [])
            if fname in CARRIER_CALLS:
                return []
            if fname == "__unpacked__":  # element `index` of a call's tuple result
                inner = e.args[0]
                kv = e.keywords[0].value if e.keywords else None
                index = kv.value if isinstance(kv, ast.Constant) and isinstance(
                    kv.value, int) else None
                return self.resolve_returns(m, inner, index, depth)
            if isinstance(f, (ast.Name, ast.Attribute)):
                return self.resolve_returns(m, e, None, depth)
            raise _Unresolved(f"the call {ast.unparse(e)}")
        raise _Unresolved(ast.unparse(e))

    def resolve_attribute(self, m: _Module, e: ast.Attribute, depth: int) -> list[str]:
        dotted = ast.unparse(e)
        if e.attr == "value" and isinstance(e.value, (ast.Attribute, ast.Name)):
            return self.resolve(m, e.value, depth + 1)
        if dotted in self.enum_members:
            return [self.enum_members[dotted]]
        if isinstance(e.value, ast.Name):
            target = m.imports.get(e.value.id)
            if target in (("node.core", "reasons"), ("node.core.reasons", "")):
                if e.attr not in self.registry_consts:
                    raise _Unresolved(f"{dotted}: no such constant in node.core.reasons")
                return [self.registry_consts[e.attr]]
        if e.attr in _CARRIERS:
            return []  # a code carried by an object: emitted where it was made
        raise _Unresolved(dotted)

    def resolve_name(self, m: _Module, e: ast.Name, depth: int) -> list[str]:
        name = e.id
        for fn in self.enclosing_functions(m, e):
            args = fn.args
            positional = [*args.posonlyargs, *args.args]
            params = [a.arg for a in positional] + [a.arg for a in args.kwonlyargs]
            if name in params:
                self.forwarder(m, fn, name)
                return []
            values = list(self.local_values(fn, name))
            if values:
                return [c for v in values for c in self.resolve(m, v, depth + 1)]
        if name in m.consts:
            return [c for v in m.consts[name] for c in self.resolve(m, v, depth + 1)]
        if name in m.imports:
            mod, attr = m.imports[name]
            if mod == "node.core.reasons":
                if attr not in self.registry_consts:
                    raise _Unresolved(f"{name}: no such constant in node.core.reasons")
                return [self.registry_consts[attr]]
            src = self.modules.get(mod)
            if src is not None and attr in src.consts:
                return [c for v in src.consts[attr] for c in self.resolve(src, v, depth + 1)]
        raise _Unresolved(name)

    def resolve_returns(self, m: _Module, call: ast.expr, index: int | None,
                        depth: int) -> list[str]:
        """What a call of a function defined under node/ returns (element ``index``)."""
        if not isinstance(call, ast.Call):
            raise _Unresolved(ast.unparse(call))
        f = call.func
        fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if fname in CARRIER_CALLS:
            return []
        if isinstance(f, ast.Attribute) and not (
                isinstance(f.value, ast.Name) and f.value.id in ("self", "cls")):
            raise _Unresolved(f"the call {ast.unparse(call)}")
        defs = [(mm, n) for mm in ([m] + [x for x in self.modules.values() if x is not m])
                for n in ast.walk(mm.tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == fname]
        if not defs:
            raise _Unresolved(f"the call {ast.unparse(call)}")
        mm, fn = defs[0]  # the caller's own module first
        out: list[str] = []
        for n in _own_nodes(fn):
            if isinstance(n, ast.Return) and n.value is not None:
                v = n.value
                if index is not None:
                    if not (isinstance(v, ast.Tuple) and len(v.elts) > index):
                        raise _Unresolved(f"{fname}() returns {ast.unparse(v)}")
                    v = v.elts[index]
                out += self.resolve(mm, v, depth + 1)
        return out

    @staticmethod
    def local_values(fn: ast.AST, name: str) -> Iterator[ast.expr]:
        for n in ast.walk(fn):
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    yield from _assigned(t, n.value, name)
            elif isinstance(n, ast.AnnAssign) and n.value is not None:
                yield from _assigned(n.target, n.value, name)
            elif isinstance(n, ast.NamedExpr) and n.target.id == name:
                yield n.value

    def forwarder(self, m: _Module, fn: ast.FunctionDef | ast.AsyncFunctionDef,
                  param: str) -> None:
        args = fn.args
        positional = [a.arg for a in [*args.posonlyargs, *args.args]]
        cls = self.enclosing_class(m, fn)
        is_method = cls is not None and bool(positional) and positional[0] in ("self", "cls")
        if is_method:
            positional = positional[1:]
        index = positional.index(param) if param in positional else -1
        callee = cls.name if (cls is not None and fn.name == "__init__") else fn.name
        fw = _Forwarder(callee, index, param, is_method)
        self.forwarders.setdefault(fw, None)
        if self._status is not None:
            self.fw_status.setdefault(fw, self._status)
        if "status" in positional:
            self.fw_status_param[fw] = positional.index("status")
        # the parameter's default is a code too
        defaults: dict[str, ast.expr] = {}
        pos_all = [*args.posonlyargs, *args.args]
        for a, d in zip(pos_all[len(pos_all) - len(args.defaults):], args.defaults, strict=True):
            defaults[a.arg] = d
        for a, kd in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if kd is not None:
                defaults[a.arg] = kd
        if param in defaults:
            self.sink(m, defaults[param], f"default of {callee}({param}=)", fn)

    # --- sinks ---------------------------------------------------------------------------

    def sink(self, m: _Module, e: ast.expr, idiom: str, at: ast.AST,
             status: str | None = None) -> None:
        self._status = status
        try:
            codes = self.resolve(m, e)
        except _Unresolved as exc:
            self.problem(m, at, f"{idiom}: cannot tell which reason code {ast.unparse(e)!r} "
                                f"is ({exc}); use a literal or a node.core.reasons constant")
            return
        for c in codes:
            self.emit(m, at, c, idiom, status)

    def scan_module(self, m: _Module) -> None:
        for n in ast.walk(m.tree):
            if isinstance(n, ast.Call):
                self.scan_call(m, n)
            elif isinstance(n, ast.Dict):
                self.scan_dict(m, n)
            elif isinstance(n, ast.Tuple) and len(n.elts) == 2 and _is_reason_key(n.elts[0]):
                self.sink(m, n.elts[1], "bxnode-reason metadata", n)
            elif isinstance(n, ast.ClassDef):
                self.scan_class(m, n)

    def scan_class(self, m: _Module, n: ast.ClassDef) -> None:
        for st in n.body:
            targets = st.targets if isinstance(st, ast.Assign) else [
                st.target] if isinstance(st, ast.AnnAssign) else []
            value = st.value if isinstance(st, (ast.Assign, ast.AnnAssign)) else None
            if value is not None and any(
                    isinstance(t, ast.Name) and t.id == "default_reason" for t in targets):
                self.sink(m, value, f"{n.name}.default_reason", st,
                          self.inherited(n.name, "status"))
        if n.name == "Reason" and any(ast.unparse(b) in ("StrEnum", "enum.StrEnum")
                                      for b in n.bases):
            for st in n.body:
                if isinstance(st, ast.Assign):
                    self.sink(m, st.value, "policy Reason enum", st, POLICY_STATUS)

    def scan_call(self, m: _Module, n: ast.Call) -> None:
        f = n.func
        fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if fname in _LOGGERS and isinstance(f, ast.Attribute):
            return  # a log line's reason= repeats a code emitted elsewhere, for the operator
        status = self.inherited(fname, "status") if self.is_error(fname) else None
        if fname == "PolicyDenied":
            status = POLICY_STATUS
        kws = {k.arg: k for k in n.keywords if k.arg is not None}
        for key in ("reason", "reasons"):
            if key in kws and fname not in HUMAN_TEXT_CALLEES:
                self.sink(m, kws[key].value, f"{fname}({key}=)", n, status)
        if (self.is_error(fname) and "reason" not in kws and "reasons" not in kws
                and fname != _ROOT_ERROR and not _is_super_init(n)):
            self.bare.append((m, n, fname, status))

    def scan_bare(self) -> None:
        """Errors constructed without ``reason=`` emit their class's ``default_reason``."""
        forwarding = {fw.name for fw in self.forwarders if fw.param == "reason"}
        for m, n, fname, status in self.bare:
            if fname in forwarding and len(n.args) > min(
                    fw.index for fw in self.forwarders if fw.name == fname):
                continue  # the reason was passed positionally: scanned as a forwarder call
            default = self.inherited(fname, "default_reason")
            if default is not None:
                self.emit(m, n, default, f"{fname}() without reason=", status)

    def scan_dict(self, m: _Module, n: ast.Dict) -> None:
        for k, v in zip(n.keys, n.values, strict=True):
            if isinstance(k, ast.Constant) and k.value in ("reason", "reasons"):
                fn = next(self.enclosing_functions(m, n), None)
                if fn is not None and (m.rel, fn.name) in HUMAN_TEXT_DICTS:
                    continue
                self.sink(m, v, f'dict "{k.value}"', n)

    def scan_forwarder_calls(self) -> bool:
        todo = [fw for fw in self.forwarders if fw not in self.done]
        if not todo:
            return False
        for fw in todo:
            self.done.add(fw)
            if fw.name in HUMAN_TEXT_CALLEES:
                continue
            for m in self.modules.values():
                for n in ast.walk(m.tree):
                    if not isinstance(n, ast.Call) or _is_super_init(n):
                        continue
                    f = n.func
                    fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(
                        f, ast.Attribute) else ""
                    if fname != fw.name or not (fw.name in self.classes  # a constructor
                                                or _calls_this_kind(f, fw.is_method)):
                        continue
                    arg: ast.expr | None = None
                    if 0 <= fw.index < len(n.args) and not any(
                            isinstance(a, ast.Starred) for a in n.args[: fw.index + 1]):
                        arg = n.args[fw.index]
                    for k in n.keywords:
                        if k.arg == fw.param:
                            arg = k.value
                    if arg is None:
                        continue
                    by_keyword = any(k.arg == fw.param for k in n.keywords)
                    if by_keyword and fw.param in ("reason", "reasons") and (
                            fname not in HUMAN_TEXT_CALLEES):
                        continue  # already scanned as a reason= sink
                    status = self.fw_status.get(fw)
                    if self.is_error(fname):
                        status = self.inherited(fname, "status")
                    sp = self.fw_status_param.get(fw)
                    given = n.args[sp] if sp is not None and sp < len(n.args) else None
                    if isinstance(given, ast.Constant):
                        status = str(given.value)
                    self.sink(m, arg, f"{fw.name}(…{fw.param}…)", n, status)
        return True


def _calls_this_kind(f: ast.expr, is_method: bool) -> bool:
    """A method is called as ``x.name(...)``; a function as ``name(...)`` or
    ``module.name(...)``, never ``self.name(...)``: helpers of one name in two modules
    (a nested ``refuse(code, message, reason)``, a method ``refuse(request, status, ...)``)
    must not read each other's arguments."""
    if is_method:
        return isinstance(f, ast.Attribute)
    return isinstance(f, ast.Name) or not (
        isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
        and f.value.id in ("self", "cls"))


def _assigned(target: ast.expr, value: ast.expr, name: str) -> Iterator[ast.expr]:
    if isinstance(target, ast.Name) and target.id == name:
        yield value
    elif isinstance(target, ast.Tuple):
        for i, t in enumerate(target.elts):
            if isinstance(t, ast.Name) and t.id == name:
                if isinstance(value, ast.Tuple) and len(value.elts) == len(target.elts):
                    yield value.elts[i]
                else:
                    yield ast.Call(ast.Name("__unpacked__"), [value],
                                   [ast.keyword("index", ast.Constant(i))])


def _own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of functions nested in it."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        n = todo.pop()
        yield n
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(n))


def _is_metadata(e: ast.expr) -> bool:
    """``md`` / ``metadata``-like: a gRPC metadata mapping read for the peer's code."""
    return isinstance(e, ast.Name) and e.id in ("md", "metadata", "trailers")


def _is_reason_key(e: ast.expr) -> bool:
    return (isinstance(e, ast.Name) and e.id in ("REASON_KEY", "_REASON_KEY")) or (
        isinstance(e, ast.Constant) and e.value == "bxnode-reason")


def _is_super_init(n: ast.Call) -> bool:
    f = n.func
    return (isinstance(f, ast.Attribute) and f.attr == "__init__" and isinstance(f.value, ast.Call)
            and isinstance(f.value.func, ast.Name) and f.value.func.id == "super")


def _scan_rego(root: Path, path: Path, out: Scan) -> None:
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(root).as_posix()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    for mo in _REGO_CONTAINS.finditer(text):
        out.sites.append(Site(mo.group(1), rel, line_of(mo.start()), "rego reasons contains",
                              POLICY_STATUS))
    for mo in _REGO_DECISION.finditer(text):
        for code in re.findall(r'"([^"]*)"', mo.group(1)):
            out.sites.append(Site(code, rel, line_of(mo.start()), "rego decision reasons",
                                  POLICY_STATUS))
    for mo in re.finditer(r'"([a-z][a-z0-9_]*)"', text):
        out.literals.add(mo.group(1))
    bad = re.findall(r'^\s*reasons\s+contains\s+(?!")(\S+)', text, re.M)
    for b in bad:
        out.problems.append(Problem(rel, 0, f"rego: reasons contains {b}: not a literal code"))


def scan(root: Path, *, registry_consts: dict[str, str],
         enum_members: dict[str, str]) -> Scan:
    """Scan ``root/node`` (not ``node/wire/_gen``) and ``root/policies``."""
    paths = sorted(p for p in (root / "node").rglob("*.py")
                   if "_gen" not in p.relative_to(root / "node").parts)
    s = _Scanner(root, registry_consts, enum_members)
    s.load(paths)
    for m in s.modules.values():
        for n in ast.walk(m.tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = {x.arg for x in [*n.args.posonlyargs, *n.args.args, *n.args.kwonlyargs]}
                for param in ("reason", "reasons"):
                    if param in names and n.name not in HUMAN_TEXT_CALLEES:
                        s.forwarder(m, n, param)  # a helper taking a code: check its callers
    for m in s.modules.values():
        if m.rel == "node/core/reasons.py":
            continue  # the registry itself: its literals are what the rest is checked against
        s.scan_module(m)
    while s.scan_forwarder_calls():
        pass
    s.scan_bare()
    for p in sorted((root / "policies").rglob("*.rego")):
        _scan_rego(root, p, s.out)
    return s.out
