"""Languages: gettext catalogues compiled from the committed ``.po`` files when the console
starts (so a fresh clone needs no build step), Jinja2 environments per language, dates in
the officer's locale and times with their zone (Babel).

Every text the console shows goes through these catalogues: templates with ``_()`` /
``{% trans %}``, Python with :func:`N_` (marked for extraction, translated when shown).
``babel.cfg`` at the repository root says where to extract from; a translator adds a
language with ``pybabel init -l kk`` and its code in :data:`node.web.settings.LANGUAGES`.
Names and places are data, shown exactly as written.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
import zoneinfo
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from node.web.settings import LANGUAGES

__all__ = ["LOCALE_DIR", "N_", "catalogue_path", "format_time", "language_names",
           "translations"]

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
#: English dates in the 24-hour, day-first form officers in the region read (not en_US).
DATE_LOCALES = {"en": "en_GB"}


def N_(message: str) -> str:
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (fuzzy entries left out, as msgfmt does)."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalogue for {lang!r}")
    with catalogue_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def language_names() -> dict[str, str]:
    """Each language in its own name (Русский, English)."""
    return {code: str(Locale.parse(code).get_display_name(code) or code).capitalize()
            for code in LANGUAGES}


def format_time(ms: int | None, *, lang: str, tz: str) -> str:
    """A moment in the officer's locale and zone, with the zone shown."""
    if ms is None or ms <= 0:
        return "—"
    zone = zoneinfo.ZoneInfo(tz)
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    text = format_datetime(moment, format="medium", tzinfo=zone,
                           locale=DATE_LOCALES.get(lang, lang))
    return f"{text} {moment.astimezone(zone).strftime('%Z')} ({tz})"
