"""Transliteration and folding tables: data only, no logic.

Every table maps one lower-case letter to its romanisation.  Context rules
(``Е`` at the start of a word, ``С`` between vowels, ...) are listed as data
too and applied by :mod:`node.matching.transliterate`.

Sources, cited beside each table:

* ICAO Doc 9303 Part 3 (8th ed., 2021), section 6, Table B "Transliteration of
  Cyrillic characters".  Doc 9303 does not list the Kazakh, Kyrgyz, Tajik and
  Uzbek letters other than Ў and І; for those we use the practice of the
  passport offices of KAZ, KGZ, TJK and UZB as seen in their MRZs.
* BGN/PCGN romanization systems: Russian (1947), Kazakh (1979), Kyrgyz (1979),
  Tajik (1994), Uzbek (1979).  Diacritics are folded to ASCII (Ä→A, Ö→O,
  Ü→U, Ī→I, Ū→U, Ḩ→H) because they are keys for MRZ-style comparison.
* Kazakh Latin alphabet of 2021 (the revised alphabet presented to the
  President in January 2021).
* Uzbek Latin alphabet (Law of 1995, as amended), with Oʻ and Gʻ.
* Turkmen Latin alphabet (1993, revised 1999), from the Turkmen Cyrillic
  alphabet of 1940–1993.
* "English", "French" and "German" styles: the popular spellings found on
  older documents and in European registers (Юсупов: YUSUPOV, IOUSSOUPOV,
  JUSSUPOW).  They follow no single standard; the tables record the common
  practice.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: Letters of each Cyrillic alphabet covered (lower case).
RUSSIAN_LETTERS: Final = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
KAZAKH_LETTERS: Final = RUSSIAN_LETTERS + "әғқңөұүһі"
KYRGYZ_LETTERS: Final = RUSSIAN_LETTERS + "ңөү"
TAJIK_LETTERS: Final = "абвгғдеёжзиӣйкқлмнопрстуӯфхҳчҷшъэюя"
UZBEK_CYRILLIC_LETTERS: Final = "абвгдеёжзийклмнопрстуфхцчшъьэюяўқғҳ"
TURKMEN_CYRILLIC_LETTERS: Final = RUSSIAN_LETTERS + "әҗңөү"
ALL_CYRILLIC: Final = "".join(
    sorted(set(KAZAKH_LETTERS + TAJIK_LETTERS + UZBEK_CYRILLIC_LETTERS + TURKMEN_CYRILLIC_LETTERS))
)

#: Turkmen Latin alphabet (1999): the letters beyond ASCII are ç ä ž ň ö ş ü ý.
TURKMEN_LATIN_LETTERS: Final = "abçdeäfghijžklmnňoöprsştuüwyýz"

_RU_ICAO = {
    "а": "A", "б": "B", "в": "V", "г": "G", "д": "D", "е": "E", "ё": "E", "ж": "ZH",
    "з": "Z", "и": "I", "й": "I", "к": "K", "л": "L", "м": "M", "н": "N", "о": "O",
    "п": "P", "р": "R", "с": "S", "т": "T", "у": "U", "ф": "F", "х": "KH", "ц": "TS",
    "ч": "CH", "ш": "SH", "щ": "SHCH", "ъ": "IE", "ы": "Y", "ь": "", "э": "E",
    "ю": "IU", "я": "IA",
}

# ICAO Doc 9303 Part 3, section 6, Table B (Cyrillic).  Ў→U and І→I are in
# Table B; the other Central Asian letters follow national passport practice
# (KAZ: Қ→K, Ғ→G, Ң→N, Ө→O, Ұ/Ү→U, Һ→H, Ә→A; TJK: Ҷ→J, Ҳ→H; TKM: Җ→J).
ICAO: Final = MappingProxyType({
    **_RU_ICAO,
    "ә": "A", "ғ": "G", "қ": "K", "ң": "N", "ө": "O", "ұ": "U", "ү": "U", "һ": "H",
    "і": "I", "ӣ": "I", "ӯ": "U", "ҳ": "H", "ҷ": "J", "ў": "U", "җ": "J",
})

# BGN/PCGN Russian (1947): Й→Y, Ъ→ʺ and Ь→ʼ (dropped here), Ю→YU, Я→YA, Ё→YË.
# Central Asian letters from BGN/PCGN Kazakh 1979 (Ә→Ä, Ғ→GH, Қ→Q, Ң→NG, Ө→Ö,
# Ұ→U, Ү→Ü, Һ→H, І→I), Tajik 1994 (Ӣ→Ī, Ӯ→Ū, Ҳ→Ḩ, Ҷ→J) and Uzbek 1979 (Ў→Ŭ).
BGN_PCGN: Final = MappingProxyType({
    "а": "A", "б": "B", "в": "V", "г": "G", "д": "D", "е": "E", "ё": "YO", "ж": "ZH",
    "з": "Z", "и": "I", "й": "Y", "к": "K", "л": "L", "м": "M", "н": "N", "о": "O",
    "п": "P", "р": "R", "с": "S", "т": "T", "у": "U", "ф": "F", "х": "KH", "ц": "TS",
    "ч": "CH", "ш": "SH", "щ": "SHCH", "ъ": "", "ы": "Y", "ь": "", "э": "E",
    "ю": "YU", "я": "YA",
    "ә": "A", "ғ": "GH", "қ": "Q", "ң": "NG", "ө": "O", "ұ": "U", "ү": "U", "һ": "H",
    "і": "I", "ӣ": "I", "ӯ": "U", "ҳ": "H", "ҷ": "J", "ў": "U", "җ": "J",
})

# English-style spellings on older passports and in registers.
ENGLISH: Final = MappingProxyType({
    **BGN_PCGN,
    "ё": "YO", "й": "Y", "ғ": "G", "қ": "K", "ң": "N", "ҳ": "KH",
})

# French-style spellings (older European forms): У→OU, Ш→CH, Ч→TCH, Ж→J,
# Ю→IOU, Я→IA, Й→I; С doubled between vowels (see CONTEXT_RULES).
FRENCH: Final = MappingProxyType({
    "а": "A", "б": "B", "в": "V", "г": "G", "д": "D", "е": "E", "ё": "IO", "ж": "J",
    "з": "Z", "и": "I", "й": "I", "к": "K", "л": "L", "м": "M", "н": "N", "о": "O",
    "п": "P", "р": "R", "с": "S", "т": "T", "у": "OU", "ф": "F", "х": "KH", "ц": "TS",
    "ч": "TCH", "ш": "CH", "щ": "CHTCH", "ъ": "", "ы": "Y", "ь": "", "э": "E",
    "ю": "IOU", "я": "IA",
    "ә": "A", "ғ": "GH", "қ": "K", "ң": "N", "ө": "O", "ұ": "OU", "ү": "OU", "һ": "H",
    "і": "I", "ӣ": "I", "ӯ": "OU", "ҳ": "KH", "ҷ": "DJ", "ў": "OU", "җ": "DJ",
})

# German-style spellings: В→W, Ж→SCH, З→S, Й→J, Х→CH, Ц→Z, Ч→TSCH, Ш→SCH,
# Ю→JU, Я→JA; С doubled between vowels.
GERMAN: Final = MappingProxyType({
    "а": "A", "б": "B", "в": "W", "г": "G", "д": "D", "е": "E", "ё": "JO", "ж": "SCH",
    "з": "S", "и": "I", "й": "J", "к": "K", "л": "L", "м": "M", "н": "N", "о": "O",
    "п": "P", "р": "R", "с": "S", "т": "T", "у": "U", "ф": "F", "х": "CH", "ц": "Z",
    "ч": "TSCH", "ш": "SCH", "щ": "SCHTSCH", "ъ": "", "ы": "Y", "ь": "", "э": "E",
    "ю": "JU", "я": "JA",
    "ә": "A", "ғ": "G", "қ": "K", "ң": "NG", "ө": "O", "ұ": "U", "ү": "U", "һ": "H",
    "і": "I", "ӣ": "I", "ӯ": "U", "ҳ": "CH", "ҷ": "DSCH", "ў": "U", "җ": "DSCH",
})

# Kazakh Latin alphabet (2021 revision).  Letters outside Kazakh (Ӣ, Ӯ, Ҳ, Ҷ,
# Ў, Җ) take their nearest Kazakh reading.
KAZAKH_LATIN: Final = MappingProxyType({
    "а": "a", "ә": "ä", "б": "b", "в": "v", "г": "g", "ғ": "ğ", "д": "d", "е": "e",
    "ё": "io", "ж": "j", "з": "z", "и": "i", "й": "i", "к": "k", "қ": "q", "л": "l",
    "м": "m", "н": "n", "ң": "ñ", "о": "o", "ө": "ö", "п": "p", "р": "r", "с": "s",
    "т": "t", "у": "u", "ұ": "ū", "ү": "ü", "ф": "f", "х": "h", "һ": "h", "ц": "ts",
    "ч": "ch", "ш": "ş", "щ": "şş", "ъ": "", "ы": "y", "і": "ı", "ь": "", "э": "e",
    "ю": "iu", "я": "ia",
    "ӣ": "i", "ӯ": "ū", "ҳ": "h", "ҷ": "j", "ў": "ū", "җ": "j",
})

# Uzbek Latin alphabet (1995): Ж→J, Й→Y, Х→X, Ц→S (TS), Ч→CH, Ш→SH, Ў→Oʻ,
# Қ→Q, Ғ→Gʻ, Ҳ→H, Ъ→ʼ; Е→YE at the start of a word (CONTEXT_RULES).
UZBEK_LATIN: Final = MappingProxyType({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "j",
    "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "x", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "\u02bc", "ы": "i", "ь": "", "э": "e",
    "ю": "yu", "я": "ya", "ў": "o\u02bb", "қ": "q", "ғ": "g\u02bb", "ҳ": "h",
    "ә": "a", "ң": "ng", "ө": "o\u02bb", "ұ": "u", "ү": "u", "һ": "h", "і": "i",
    "ӣ": "i", "ӯ": "u", "ҷ": "j", "җ": "j",
})

# Turkmen Latin (1999) from Turkmen Cyrillic: Ж→Ž, Җ→J, Ч→Ç, Ш→Ş, Й→Ý,
# Ы→Y, Ә→Ä, Ө→Ö, Ү→Ü, Ң→Ň, В→W, Ю→ÝU, Я→ÝA, Ё→ÝO.
TURKMEN_LATIN: Final = MappingProxyType({
    "а": "a", "б": "b", "в": "w", "г": "g", "д": "d", "е": "e", "ё": "ýo", "ж": "ž",
    "з": "z", "и": "i", "й": "ý", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts",
    "ч": "ç", "ш": "ş", "щ": "şç", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "ýu",
    "я": "ýa", "ә": "ä", "җ": "j", "ң": "ň", "ө": "ö", "ү": "ü",
    "ғ": "g", "қ": "k", "ұ": "u", "һ": "h", "і": "i", "ӣ": "i", "ӯ": "u", "ҳ": "h",
    "ҷ": "j", "ў": "u",
})

#: Every system, by name.  The name is also the label used in explanations.
SYSTEMS: Final = MappingProxyType({
    "ICAO": ICAO,
    "BGN/PCGN": BGN_PCGN,
    "English": ENGLISH,
    "French": FRENCH,
    "German": GERMAN,
    "Kazakh Latin": KAZAKH_LATIN,
    "Uzbek Latin": UZBEK_LATIN,
    "Turkmen Latin": TURKMEN_LATIN,
})

#: Context rules: (system, letter, when, replacement).  ``when`` is one of
#: ``initial`` (start of a word), ``after_vowel`` (after a vowel, Ъ or Ь) or
#: ``between_vowels``.  BGN/PCGN Russian note 1: Е and Ё are YE/YË initially
#: and after vowels, Й, Ъ, Ь.
CONTEXT_RULES: Final = (
    ("BGN/PCGN", "е", "initial", "YE"),
    ("BGN/PCGN", "е", "after_vowel", "YE"),
    ("English", "е", "initial", "YE"),
    ("English", "е", "after_vowel", "YE"),
    ("Uzbek Latin", "е", "initial", "ye"),
    ("Uzbek Latin", "е", "after_vowel", "ye"),
    ("Turkmen Latin", "е", "initial", "ýe"),
    ("French", "е", "initial", "IE"),
    ("German", "е", "initial", "JE"),
    ("German", "е", "after_vowel", "JE"),
    ("French", "с", "between_vowels", "SS"),
    ("German", "с", "between_vowels", "SS"),
    ("French", "г", "before_front_vowel", "GU"),
)

#: Cyrillic letters that count as vowels for context rules.
CYRILLIC_VOWELS: Final = frozenset("аеёиоуыэюяәөұүіӣӯўъь")

#: Latin letters with diacritics (and the Uzbek and apostrophe marks) folded
#: to the ASCII spelling used in MRZs and registers.  Turkmen, Kazakh 2021,
#: Uzbek and BGN/PCGN diacritics are all covered.
LATIN_FOLD: Final = MappingProxyType({
    "ä": "A", "á": "A", "à": "A", "â": "A", "ã": "A", "å": "A", "ā": "A",
    "ç": "CH", "č": "CH", "ć": "CH",
    "ğ": "G", "ǵ": "G", "ġ": "G",
    "ñ": "N", "ň": "N", "ń": "N", "ŋ": "NG",
    "ö": "O", "ó": "O", "ò": "O", "ô": "O", "ő": "O", "ō": "O", "ø": "O",
    "ş": "SH", "š": "SH", "ś": "SH", "ș": "SH",
    "ü": "U", "ú": "U", "ù": "U", "û": "U", "ū": "U", "ŭ": "U", "ű": "U",
    "ý": "Y", "ÿ": "Y",
    "ž": "ZH", "ź": "Z", "ż": "Z",
    "ı": "I", "í": "I", "ì": "I", "î": "I", "ï": "I", "ī": "I", "ĭ": "I", "i̇": "I",
    "é": "E", "è": "E", "ê": "E", "ë": "E", "ē": "E", "ě": "E",
    "ḩ": "H", "ḥ": "H", "ħ": "H",
    "ß": "SS",
})

#: Marks dropped when folding (apostrophes, Uzbek ʻ and ʼ, BGN/PCGN ʺ ʼ).
LATIN_MARKS: Final = frozenset("'\u2019\u2018\u02bb\u02bc\u02b9\u02ba`\u00b4\"")

#: Endings (on the phonetic form, see _phonetic.py) that mark a Russified or
#: patronymic surname, with the sex they imply.  Longest first.  Kazakh -ұлы
#: / -қызы, Kyrgyz -уулу / -кызы, Uzbek -oʻgʻli / -qizi, Russian -ович / -овна.
PATRONYMIC_ENDINGS: Final = (
    ("inicna", "F"), ("ovna", "F"), ("evna", "F"), ("icna", "F"), ("kisi", "F"),
    ("ovic", "M"), ("evic", "M"), ("ogli", "M"), ("ugli", "M"), ("uli", "M"),
    ("ulu", "M"),
)
FAMILY_ENDINGS: Final = (
    ("skaia", "F"), ("ova", "F"), ("eva", "F"), ("ina", "F"), ("kisi", "F"),
    ("ski", "M"), ("ov", "M"), ("ev", "M"), ("in", "M"), ("ogli", "M"), ("ugli", "M"),
    ("uli", "M"), ("ulu", "M"), ("soda", ""), ("sod", ""), ("i", ""),
)
