"""``bxnode doctor``'s messages in the officer's language (the Node page).

node/cli/doctor.py speaks English on the shell; the console shows the same checks, so each
of its messages is here as a gettext template (tests/web/test_doctor_text.py derives the
templates from doctor.py's source and fails on any this list lacks or no longer needs).
:func:`translate` finds the template a message was made from, translates it and puts the
values back as they were written (node ids, paths, addresses, dates), translating a value
that is itself one of doctor's pieces (the key file kinds, a clock's side, the text of an
inner message).  A message no template knows is shown as it came.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from node.web.i18n import N_

__all__ = ["MESSAGES", "WORDS", "translate"]

#: Every message (and message piece) of node/cli/doctor.py, as a template.
MESSAGES: tuple[str, ...] = (
    N_('%(address)s presents a certificate not listed for %(node_id)s (sha256 %(fp)s...)'),
    N_('%(address)s: %(exc)s'),
    N_('%(message)s: %(left)s days left; publish a new version'),
    N_('%(node_dir)s is valid (%(node_id)s)'),
    N_('%(peer)s answered a proof request for a digest it never logged'),
    N_('%(peer)s refuses our requests as stale: the clocks differ by more than '
       '%(clock_skew_s)s s'),
    N_('%(peer)s signed an answer where a refusal was due'),
    N_("%(peer)s's clock is %(offset)s s %(side)s ours"),
    N_("%(peer)s's signed refusal does not verify: %(why)s"),
    N_('%(text)s, and dev_mode is off: serve refuses it (dev_keys_refused); generate a '
       "new key ('bxnode keys generate') and list it for this node"),
    N_('%(text)s, beyond clock_skew_s = %(clock_skew_s)s: requests between us are '
       'refused as stale'),
    N_('%(text)s, more than half of clock_skew_s = %(clock_skew_s)s'),
    N_('%(text)s; dev_mode only, never in production'),
    N_('%(where)s does not open: %(why)s'),
    N_('%(where)s is a public development key from keys/dev (key id %(kid)s): anyone '
       'can sign as this node'),
    N_('%(where)s opens and signs (key id %(kid)s)'),
    N_('a members file (%(name)s), which does not expire'),
    N_('cannot find %(node_id)s in the federation: %(why)s'),
    N_("cannot list the federation's nodes: %(why)s"),
    N_('cannot read the TLS certificate %(tls_cert)s: %(why)s'),
    N_('cannot read the agreements in %(policy_dir)s: %(why)s'),
    N_('dev_mode with development TLS material (%(files)s): for tests and the demo only'),
    N_('it compiles, but no agreement names %(node_id)s as the responder: every '
       'question is refused'),
    N_('it compiles, with %(agreements)s agreement(s) for %(node_id)s'),
    N_('not checked: %(peer)s gave no signed refusal (%(reason)s)'),
    N_('not reachable: %(problems)s'),
    N_('reachable at %(reached)s with a certificate listed for %(node_id)s'),
    N_('reachable at %(reached)s, but %(problems)s'),
    N_('the %(backend)s database opens with its key'),
    N_('the %(what)s file %(path)s does not exist'),
    N_("the %(what)s file %(path)s is mode %(mode)s: others can read it; run 'chmod "
       "600 %(path)s'"),
    N_('the %(what)s file is mode %(mode)s'),
    N_('the PKCS#11 key %(text)s'),
    N_('the TLS certificate expired at %(after)sZ; peers refuse the connection'),
    N_('the TLS certificate expires in %(left)s days (%(after)s); renew it and list '
       'the new one'),
    N_('the TLS certificate is not valid before %(before)sZ'),
    N_('the TLS certificate is valid until %(after)s'),
    N_('the TLS key, certificate and CA are not development material'),
    N_('the federation does not accept key %(kid)s for %(node_id)s (%(reason)s: '
       '%(message)s); peers refuse everything this node signs'),
    N_('the federation lists another public key under key id %(kid)s for %(node_id)s'),
    N_('the federation lists key %(kid)s for %(node_id)s'),
    N_('the key file %(name)s'),
    N_('the policy in %(policy_dir)s does not load: %(why)s'),
    N_('the trusted registry lives in the database, which did not open'),
)

#: Values doctor.py puts into its messages that are words, not data.
WORDS: tuple[str, ...] = (
    N_("signing key"), N_("PKCS#11 PIN"), N_("TLS key"), N_("database key"),
    N_("PostgreSQL password"), N_("field key"), N_("ahead of"), N_("behind"),
)
_MAX_DEPTH = 3


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    out = []
    for template in MESSAGES:
        pattern, seen = "", set()
        for literal, name in re.findall(r"((?:[^%]|%%)*)(?:%\((\w+)\)s|$)", template):
            pattern += re.escape(literal.replace("%%", "%"))
            if name:
                pattern += f"(?P={name})" if name in seen else f"(?P<{name}>.+?)"
                seen.add(name)
        out.append((template, re.compile(pattern, re.S)))
    # the most specific first: the longest literal text
    return tuple(sorted(out, key=lambda p: -len(re.sub(r"%\(\w+\)s", "", p[0]))))


def translate(message: str, gettext: Callable[[str], str], _depth: int = 0) -> str:
    """``message`` (one of doctor's) in the language of ``gettext``."""
    for template, rx in _compiled():
        m = rx.fullmatch(message)
        if m is None:
            continue
        values = {k: _value(v, gettext, _depth) for k, v in m.groupdict().items()}
        try:
            return gettext(template) % values
        except (KeyError, ValueError, TypeError):  # a translation that lost a placeholder
            return message
    return message


def _value(value: str, gettext: Callable[[str], str], depth: int) -> str:
    if value in WORDS:
        return gettext(value)
    return translate(value, gettext, depth + 1) if depth < _MAX_DEPTH else value
