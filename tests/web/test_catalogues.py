"""The console's catalogues: every text the sources mark is in each .po, and Russian is complete.

Extraction runs here with the same rules as ``make catalogues`` (babel.cfg, keyword ``N_``),
so a new text without its Russian translation fails the suite, naming the text.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from node.web import i18n
from node.web.settings import LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def _extracted() -> set[str]:
    method_map = [("node/web/**.py", "python"), ("node/web/templates/**.html", "jinja2")]
    options = {"node/web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    out = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
            str(ROOT), method_map, options, keywords=KEYWORDS):
        out.add(message if isinstance(message, str) else message[0])
    return out


def _catalog(lang: str) -> dict[str, tuple[str, bool]]:
    with i18n.catalogue_path(lang).open("rb") as f:
        return {m.id: (m.string, m.fuzzy) for m in read_po(f) if m.id
                and isinstance(m.id, str) and isinstance(m.string, str)}


def test_extraction_finds_the_console_texts() -> None:
    found = _extracted()
    assert {"Follow up this HIT", "Your role does not allow this.", "Sign in"} <= found
    assert len(found) > 100


def test_every_marked_text_is_in_every_catalogue() -> None:
    found = _extracted()
    for lang in LANGUAGES:
        missing = sorted(found - set(_catalog(lang)))
        assert not missing, f"{lang}: run 'make catalogues'; not in the .po: {missing[:10]}"


def test_the_russian_catalogue_is_complete() -> None:
    ru = _catalog("ru")
    untranslated = sorted(t for t in _extracted() if not ru.get(t, ("", False))[0])
    fuzzy = sorted(t for t, (_s, f) in ru.items() if f)
    assert not untranslated, f"untranslated in Russian: {untranslated[:10]}"
    assert not fuzzy, f"fuzzy (unchecked) in Russian: {fuzzy[:10]}"


def test_placeholders_survive_translation() -> None:
    import re

    for msgid, (msgstr, _f) in _catalog("ru").items():
        want = sorted(re.findall(r"%\(\w+\)s", msgid))
        assert sorted(re.findall(r"%\(\w+\)s", msgstr)) == want, msgid


def test_catalogues_compile_at_start_and_translate() -> None:
    i18n.translations.cache_clear()
    ru = i18n.translations("ru")
    assert ru.gettext("Follow up this HIT") == "Запросить данные по совпадению"
    assert i18n.translations("en").gettext("Follow up this HIT") == "Follow up this HIT"


def test_times_in_the_officers_locale_with_their_zone() -> None:
    ms = 1_780_000_000_000  # 2026-05-28 20:26:40 UTC
    assert i18n.format_time(ms, lang="en", tz="Asia/Bishkek") == (
        "29 May 2026, 02:26:40 +06 (Asia/Bishkek)")
    assert i18n.format_time(ms, lang="ru", tz="Europe/Moscow") == (
        "28 мая 2026\u202fг., 23:26:40 MSK (Europe/Moscow)")
    assert i18n.format_time(None, lang="ru", tz="UTC") == "—"


def test_every_explained_code_is_a_registered_reason() -> None:
    """An explanation under a code nothing emits is never shown: the officer would read the
    generic sentence instead (it happened: bad_state_code, deny_reason_required)."""
    from node.core.reasons import is_registered
    from node.web.pages import EXPLAIN

    stale = sorted(k for k in EXPLAIN if k != "_default" and not is_registered(k))
    assert not stale, f"not reason codes: {stale}"
