"""``bxnode doctor``'s messages on the Node page go through the console's catalogues.

node/web/doctor_text.py holds each message of node/cli/doctor.py as a gettext template;
this test derives the templates from doctor.py's own source (every message given to
``_ok`` / ``_warn`` / ``_fail``, and the pieces built into them: ``text``, ``where``,
``problems``) and fails, naming it, on any message the console does not have, or has but
doctor.py no longer says, so a new doctor message cannot reach the page untranslated (the
Russian completeness test in test_catalogues.py then asks for its translation).
"""

from __future__ import annotations

import ast
from pathlib import Path

from node.web import doctor_text, i18n

ROOT = Path(__file__).resolve().parents[2]
DOCTOR = ROOT / "node" / "cli" / "doctor.py"
_CHECKS = {"_ok", "_warn", "_fail"}
_PIECES = {"text", "where"}


def _name(e: ast.expr) -> str:
    """A placeholder's name from the expression it stands for."""
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Attribute):
        return e.attr
    if isinstance(e, ast.Call):
        f = e.func
        if isinstance(f, ast.Attribute) and f.attr == "join" and e.args:
            return _name(e.args[0])
        if isinstance(f, ast.Name) and f.id in ("len", "abs", "str") and e.args:
            return _name(e.args[0])
        if isinstance(f, ast.Name):
            return f.id.strip("_")
    if isinstance(e, ast.BinOp):
        return _name(e.left)
    if isinstance(e, ast.Subscript):
        return _name(e.value)
    if isinstance(e, ast.BoolOp):
        return _name(e.values[0])
    if isinstance(e, ast.GeneratorExp | ast.ListComp):
        return _name(e.generators[0].iter)
    raise AssertionError(f"doctor.py line {e.lineno}: name this placeholder in _name()")


def _template(e: ast.expr) -> str | None:
    if isinstance(e, ast.Constant) and isinstance(e.value, str):
        return e.value.replace("%", "%%")
    if isinstance(e, ast.JoinedStr):
        out = ""
        for v in e.values:
            if isinstance(v, ast.Constant):
                out += str(v.value).replace("%", "%%")
            else:
                assert isinstance(v, ast.FormattedValue)
                out += f"%({_name(v.value)})s"
        return out
    if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add):
        left, right = _template(e.left), _template(e.right)
        return (left if left is not None else f"%({_name(e.left)})s") + (
            right if right is not None else f"%({_name(e.right)})s")
    return None  # a value computed elsewhere (an error's text, a registry's status)


def doctor_templates() -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(DOCTOR.read_text(encoding="utf-8"))):
        exprs: list[ast.expr] = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id in _CHECKS):
            exprs.append(node.args[1])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr == "append" and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "problems"):
            exprs.append(node.args[0])
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in _PIECES for t in node.targets):
            v = node.value
            exprs.extend([v.body, v.orelse] if isinstance(v, ast.IfExp) else [v])
        for e in exprs:
            t = _template(e)
            if t is not None and t.strip("%()s") and not _only_placeholders(t):
                found.add(t)
    return found


def _only_placeholders(t: str) -> bool:
    import re

    return re.fullmatch(r"(%\(\w+\)s)+", t) is not None


def test_every_doctor_message_is_a_console_template() -> None:
    derived, ours = doctor_templates(), set(doctor_text.MESSAGES)
    assert len(derived) > 30
    assert not derived - ours, f"add to node/web/doctor_text.py: {sorted(derived - ours)}"
    assert not ours - derived, f"doctor.py no longer says: {sorted(ours - derived)}"


def test_messages_are_translated_with_their_values_as_written() -> None:
    ru = i18n.translations("ru").gettext
    assert doctor_text.translate("the TLS certificate is valid until 2027-03-01", ru) == (
        "сертификат TLS действителен до 2027-03-01")
    assert doctor_text.translate("the signing key file is mode 0600", ru) == (
        "файл ключа подписи: режим 0600")
    # a piece inside a message is translated too; names and addresses stay as written
    assert doctor_text.translate("KGZ-BS's clock is 0.2 s ahead of ours", ru) == (
        "часы KGZ-BS на 0.2 с впереди наших")
    assert doctor_text.translate(
        "reachable at 127.0.0.1:5001 with a certificate listed for KGZ-BS", ru) == (
        "доступен по адресу 127.0.0.1:5001 с сертификатом, указанным для KGZ-BS")
    # English stays English; a text no template knows is shown as it came
    en = i18n.translations("en").gettext
    assert doctor_text.translate("the TLS certificate is valid until 2027-03-01", en) == (
        "the TLS certificate is valid until 2027-03-01")
    assert doctor_text.translate("something new", ru) == "something new"
