"""One registry of reason codes (node/core/reasons.py), checked against the code and the READMEs.

(a) every code emitted anywhere under node/ (not node/wire/_gen) or by a policy under
    policies/ is registered, and no emitting site hides its code behind a value the
    scanner cannot read (tests/unit/core/_reason_scan.py lists the idioms);
(b) every code a peer can see is in a refusal table of README.md with its registered
    status, every code in those tables is registered with that status, and every code the
    LocalService emits is in the LocalService table;
(c) every registered code is emitted somewhere, so the registry cannot rot;
(d) every code a policy emits is listed in policies/README.md, in the section of its file;
(e) one code, one status: where the scanner reads both, a code is never raised with a gRPC
    status other than the one it is registered with.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from node.core import reasons
from node.core.errors import PolicyDenied
from node.core.reasons import REASONS, is_registered, lookup, peer_visible
from node.policy._decision import Reason
from tests.unit.core._reason_scan import HUMAN_TEXT_DICTS, POLICY_STATUS, Scan, Site, scan

ROOT = Path(__file__).resolve().parents[3]
_STATUS = re.compile(r"[A-Z][A-Z_]+")
_CODE = re.compile(r"[a-z][a-z0-9_]*")
#: The LocalService: the modules serving bxnode.v1.LocalService (README "For the national
#: system integrator").
_LOCAL_SERVICE = ("node/local/server.py", "node/local/service.py", "node/local/auth.py")


@cache
def _scan() -> Scan:
    consts = {name: getattr(reasons, name) for name in dir(reasons)
              if name.isupper() and isinstance(getattr(reasons, name), str)}
    return scan(ROOT, registry_consts=consts,
                enum_members={f"Reason.{m.name}": m.value for m in Reason})


def _sites_by_code() -> dict[str, list[Site]]:
    out: dict[str, list[Site]] = defaultdict(list)
    for s in _scan().sites:
        out[s.code].append(s)
    return out


# --- the registry itself ---------------------------------------------------------------------


def test_registry_is_well_formed() -> None:
    codes = [r.code for r in REASONS]
    assert len(codes) == len(set(codes)), "a code is registered twice"
    for r in REASONS:
        assert _CODE.fullmatch(r.code), r.code
        assert r.audience in reasons.AUDIENCES, r
        assert r.status is None or _STATUS.fullmatch(r.status), r
        assert r.status != "OK", r
        assert r.meaning and "\n" not in r.meaning, r
        if r.audience != "operator":
            assert r.status is not None, f"{r.code} reaches peers, so it has a gRPC status"
    assert lookup("replayed_nonce").status == "UNAUTHENTICATED"
    assert is_registered("no_agreement") and not is_registered("no_such_code_at_all")
    with pytest.raises(KeyError):
        lookup("no_such_code_at_all")


# --- (a) every emitted code is registered -------------------------------------------------------


def test_scanner_reads_every_emitting_site() -> None:
    """A reason= (or default_reason, reasons=, "reason":, bxnode-reason) the scanner cannot
    resolve to literal codes fails here: use a literal or a node.core.reasons constant."""
    problems = [str(p) for p in _scan().problems]
    assert not problems, "\n".join(problems)


def test_every_emitted_code_is_registered() -> None:
    missing = {c: sites for c, sites in _sites_by_code().items() if not is_registered(c)}
    report = [f"{c}: {', '.join(f'{s.path}:{s.line}' for s in sites[:3])}"
              for c, sites in sorted(missing.items())]
    assert not missing, "emitted but not in node/core/reasons.py:\n" + "\n".join(report)


def test_scanner_finds_each_idiom() -> None:
    """The scanner is itself tested: each idiom finds a code known to be emitted that way."""
    idioms = {(s.code, s.idiom) for s in _scan().sites}

    def found(code: str, idiom: str) -> bool:
        return any(c == code and idiom in i for c, i in idioms)

    assert found("replayed_nonce", "Unauthenticated(reason=)")          # keyword reason=
    assert found("unknown_alert", ".default_reason")                    # default_reason =
    assert found("no_agreement", "rego reasons contains")               # Rego
    assert found("policy_error", "rego decision reasons")               # Rego default decision
    assert found("policy_unavailable", "policy Reason enum")            # the Reason enum
    assert found("bad_bcp_code", "_bad(")                               # _bad("...", "code")
    assert found("bad_case_ref", "_require(")                           # _require(c, m, "code")
    assert found("malformed_payload", "default of _bad(reason=)")       # a helper's default
    assert found("message_too_large", "_Refused(")                      # positional (status, code)
    assert found("no_client_certificate", "refusal_metadata(…reason…)")  # (REASON_KEY, param)
    assert found("audit_unavailable", "abort(…reason…)")                # …forwarded further
    assert found("policy_invalid", "ConfigError(reason=)")              # reason=_MODULE_CONSTANT
    assert found("no_db_key", "load_hex_key(")                          # a parameter named missing
    assert found("malformed_note", "MalformedNote() without reason=")   # class default, raised bare
    assert found("database_full", "EnvironmentFault(reason=)")          # a table of codes (.get)


def test_free_text_exemptions_name_real_functions() -> None:
    for rel, fn in HUMAN_TEXT_DICTS:
        text = (ROOT / rel).read_text(encoding="utf-8")
        assert re.search(rf"def {fn}\b", text), f"{rel} has no {fn}: drop the exemption"


def test_scanner_refuses_a_dynamic_code(tmp_path: Path) -> None:
    (tmp_path / "node").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "node" / "m.py").write_text(
        "class BxError(Exception):\n    default_reason = 'x_default'\n"
        "def f(code: str) -> None:\n    raise BxError('m', reason=code.upper())\n"
        "def g(n: int) -> None:\n    raise BxError('m', reason=f'bad_{n}')\n"
        "def h() -> None:\n    raise BxError('m', reason='fine_code')\n")
    (tmp_path / "policies" / "p.rego").write_text('reasons contains "rego_code" if true\n'
                                                  "reasons contains r if r := input.x\n")
    got = scan(tmp_path, registry_consts={}, enum_members={})
    assert {s.code for s in got.sites} == {"x_default", "fine_code", "rego_code"}
    assert len(got.problems) == 3, got.problems


# --- (c) no registered code is unused -------------------------------------------------------------


def test_every_registered_code_is_emitted() -> None:
    emitted = _scan().codes()
    unused = sorted(r.code for r in REASONS if r.code not in emitted)
    assert not unused, f"registered but emitted nowhere (remove them): {unused}"


# --- (b) the README's refusal tables --------------------------------------------------------------


def _reason_tables(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every markdown table whose first column is ``status`` or ``status / reason``:
    (the heading above it, [(status, code)])."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith(
            "|") else []
        if cells and cells[0] in ("status", "status / reason"):
            pairs: list[tuple[str, str]] = []
            i += 2  # the header and its |---| line
            while i < len(lines) and lines[i].startswith("|"):
                pairs += _row_pairs([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append((heading, pairs))
            continue
        i += 1
    return out


def _row_pairs(cells: list[str]) -> list[tuple[str, str]]:
    """``| `STATUS` | `a`, `b` |`` or ``| `STATUS/a`, `b` | when |`` -> [(STATUS, a), ...]."""
    ticks = re.findall(r"`([^`]+)`", cells[0])
    if not ticks:
        return []
    if "/" in ticks[0]:  # status / reason table
        status, first = ticks[0].split("/", 1)
        codes = [first, *ticks[1:]]
    else:
        status = ticks[0]
        codes = re.findall(r"`([^`]+)`", cells[1]) if len(cells) > 1 else []
    return [(status, c) for c in codes if _CODE.fullmatch(c)]


@cache
def _readme_pairs() -> dict[str, set[tuple[str, str]]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for heading, pairs in _reason_tables(text):
        out[heading] |= set(pairs)
    return out


def test_readme_tables_are_found() -> None:
    headings = set(_readme_pairs())
    for h in ("Refusals", "ConfirmCrossing", "The two-step follow-up", "LocalService refusals"):
        assert any(h in x for x in headings), f"no reason table under a heading {h!r}"


def test_every_peer_visible_code_is_in_the_readme_with_its_status() -> None:
    listed = set().union(*_readme_pairs().values())
    missing = sorted(f"{r.status}/{r.code}" for r in peer_visible()
                     if (r.status, r.code) not in listed)
    assert not missing, "README.md refusal tables lack: " + ", ".join(missing)


def test_every_readme_code_is_registered_with_that_status() -> None:
    """The LocalService table may give the status the LocalService itself refuses with."""
    local: dict[str, set[str | None]] = defaultdict(set)
    for s in _scan().sites:
        if s.path in _LOCAL_SERVICE:
            local[s.code].add(s.status)
    wrong = []
    for heading, pairs in _readme_pairs().items():
        for status, code in sorted(pairs):
            if not is_registered(code):
                wrong.append(f"{heading}: {status}/{code} is not a registered code")
            elif "LocalService" in heading and status in local[code]:
                continue
            elif lookup(code).status != status:
                wrong.append(f"{heading}: {status}/{code}, registered as {lookup(code).status}")
    assert not wrong, "\n".join(wrong)


def test_every_local_service_code_is_in_its_table() -> None:
    table = next(p for h, p in _readme_pairs().items() if "LocalService refusals" in h)
    listed = {c for _, c in table}
    emitted = {s.code for s in _scan().sites if s.path in _LOCAL_SERVICE}
    missing = sorted(c for c in emitted if lookup(c).status is not None and c not in listed)
    assert not missing, f"the README's LocalService table lacks: {missing}"


# --- (d) policies/README.md -----------------------------------------------------------------------


def _policy_sections() -> dict[str, str]:
    """policies/README.md split by the policy file each part describes."""
    text = (ROOT / "policies" / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.M)
    out = {"lookup.rego": ""}
    for part in parts:
        head = part.splitlines()[0] if part else ""
        if "crossings.rego" in head:
            out["crossings.rego"] = part
        elif "followup.rego" in head:
            out["followup.rego"] = part
        else:
            out["lookup.rego"] += part
    return out


def test_every_policy_reason_is_in_policies_readme() -> None:
    sections = _policy_sections()
    lookup_table = set(re.findall(r"^\| `([a-z_]+)` \|", sections["lookup.rego"], re.M))
    missing = []
    for s in _scan().sites:
        if s.path.endswith(".rego"):
            name = Path(s.path).name
            # crossings and follow-ups list "the agreement ones" of the lookup table
            known = set(re.findall(r"`([a-z_]+)`", sections.get(name, ""))) | lookup_table
            if s.code not in known:
                missing.append(f"{name}: {s.code}")
    for m in Reason:  # the engines' reasons are the lookup table's last rows
        if m.value not in lookup_table:
            missing.append(f"Reason.{m.name}: {m.value}")
    assert not missing, "policies/README.md lacks: " + ", ".join(sorted(set(missing)))
    for code in lookup_table:
        assert is_registered(code), f"policies/README.md lists {code}, which is not registered"


# --- (e) one code, one status -------------------------------------------------------------------

#: (module, code) -> the status it raises there on purpose, though registered with another.
_OWN_STATUS: dict[tuple[str, str], str] = {}
_POLICY_IDIOMS = ("rego reasons contains", "rego decision reasons", "policy Reason enum",
                  "PolicyDenied(reasons=)")


def _status_conflicts(sites: list[Site], registered: dict[str, str | None],
                      own: dict[tuple[str, str], str]) -> list[str]:
    """Sites raising a code with a status other than its registered one (both known)."""
    out = []
    for s in sites:
        want = registered.get(s.code)
        if s.status is None or want is None or s.status == want:
            continue
        if own.get((s.path, s.code)) == s.status:
            continue
        out.append(f"{s.path}:{s.line}: {s.code} raised {s.status}, registered {want}")
    return sorted(out)


def test_a_code_is_raised_only_with_its_registered_status() -> None:
    registered = {r.code: r.status for r in REASONS}
    wrong = _status_conflicts(_scan().sites, registered, _OWN_STATUS)
    assert not wrong, "one code, one status (node/core/reasons.py):\n" + "\n".join(wrong)
    # the scanner does read statuses where the fault was: every wrong_source site
    sites = [s for s in _scan().sites if s.code == "wrong_source"]
    assert len(sites) >= 3 and {s.status for s in sites} == {"FAILED_PRECONDITION"}, sites


def test_each_own_status_exemption_is_still_needed() -> None:
    used = {(s.path, s.code) for s in _scan().sites
            if s.status is not None and _OWN_STATUS.get((s.path, s.code)) == s.status}
    assert used == set(_OWN_STATUS), f"drop the exemptions: {set(_OWN_STATUS) - used}"


def test_the_status_check_finds_a_code_raised_with_two_statuses(tmp_path: Path) -> None:
    (tmp_path / "node").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "node" / "m.py").write_text(
        "class BxError(Exception):\n    status = 'INTERNAL'\n"
        "class InvalidInput(BxError):\n    status = 'INVALID_ARGUMENT'\n"
        "class Conflict(BxError):\n    status = 'FAILED_PRECONDITION'\n"
        "def f() -> None:\n    raise Conflict('m', reason='wrong_thing')\n"
        "def g() -> None:\n    raise InvalidInput('m', reason='wrong_thing')\n")
    got = scan(tmp_path, registry_consts={}, enum_members={})
    wrong = _status_conflicts(got.sites, {"wrong_thing": "FAILED_PRECONDITION"}, {})
    assert wrong == ["node/m.py:10: wrong_thing raised INVALID_ARGUMENT, "
                     "registered FAILED_PRECONDITION"]
    assert _status_conflicts(got.sites, {"wrong_thing": "FAILED_PRECONDITION"},
                             {("node/m.py", "wrong_thing"): "INVALID_ARGUMENT"}) == []


def test_a_policy_refusal_carries_its_first_codes_registered_status() -> None:
    """The scanner reads no status where a policy names a code (POLICY_STATUS):
    PolicyDenied gives the refusal the registered one, checked here for every such code."""
    assert POLICY_STATUS is None
    codes = {s.code for s in _scan().sites if s.idiom in _POLICY_IDIOMS}
    assert {"no_agreement", "quota_exhausted", "policy_error", "policy_unavailable",
            "no_fields_requested"} <= codes
    for code in sorted(codes):
        status = lookup(code).status
        assert status is not None, f"{code} reaches peers through policy: it needs a status"
        assert PolicyDenied("refused", reasons=(code, "no_agreement")).status == status, code
    assert PolicyDenied("refused", reasons=()).status == "PERMISSION_DENIED"
    assert PolicyDenied("refused", reasons=("not_a_registered_code",)).status == (
        "PERMISSION_DENIED")
