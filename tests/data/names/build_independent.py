"""Build ``independent.jsonl``: labelled pairs whose spellings do not come from our tables.

    .venv/bin/python tests/data/names/build_independent.py   # deterministic (seed below)

Nothing here imports :mod:`node.matching`.  Latin spellings come from the
``iuliia`` package's published schemes (ICAO Doc 9303, BGN/PCGN, MVD 310 and
782, GOST 7034 and 52535, Wikipedia, Yandex, Telegram, Moscow metro, the
scientific and UNGEGN systems), from Uzbek Latin and real public spellings
written out by hand below, and from a keyboard-typo model.  Hard negatives are
written by hand (look-alike names) or built from family structures (twins,
siblings, spouses, parent and child, namesakes).  See README.md.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import iuliia

SEED = 14_2026
OUT = Path(__file__).with_name("independent.jsonl")

# --- hand-written name stock (Russian-alphabet Cyrillic, as internal passports write it) ---

MALE = """Алексей Сергей Андрей Дмитрий Юрий Артём Пётр Фёдор Семён Матвей Тимофей Ильдар
Рустам Тимур Азамат Жасур Бахтиёр Улугбек Шерзод Фаррух Хуршид Дильшод Нурлан Жандос Серик
Канат Бекзат Айбек Эльдар Ислам Мухаммад Юсуф Ёдгор Зафар Шухрат Равшан Абдулла Исмоил Хикмат
Джамшед Фирдавс Сухроб Бахром Чингиз Данияр Виталий Вячеслав Евгений Игорь Эркин Ярослав
Жаныбек Кубанычбек Алмазбек Мирлан Тилек Асхат Ерболат Максим Николай Василий Георгий
Аркадий Олжас Мухтар Самандар Достон Жахонгир Отабек Санжар Шахзод Умид Баходир Кахрамон""".split()
FEMALE = """Наталья Ксения Юлия Татьяна Дарья Алёна Олеся Людмила Айгерим Жанар Гульнара Дилноза
Зарина Мадина Нилуфар Шахноза Феруза Мохира Гульчехра Жибек Айжан Эльмира Юлдуз Севара
Камила Диляра Ульяна Яна Эльвира Зульфия Хадича Нигора Сабина Айнура Чолпон Бурул Светлана
Ирина Екатерина Валентина Анастасия Софья Гулшан Мафтуна Сайёра Дильфуза Шоира Барно
Умида Махлиё Ойдин Асема Меруерт Толкын Индира Жулдыз Акмарал Айсулу""".split()
FAMILY = """Иванов Семёнов Алексеев Соловьёв Воробьёв Королёв Ковалёв Журавлёв Муравьёв
Григорьев Юсупов Хасанов Ходжаев Жуманов Шарипов Щербаков Назарбаев Токаев Мирзиёев
Рахимов Юлдашев Абдуллаев Хайдаров Эргашев Турсунов Нуриддинов Жээнбеков Атамбаев Акаев
Бакиев Отунбаев Жапаров Ташиев Ниязов Мейредов Чарыев Овезов Рахмонов Шарифов Давлатов
Саидов Худойбердиев Мамадалиев Ёрматов Ядгаров Юнусов Эшонов Ахмеджанов Кудайбергенов
Сулейменов Аблязов Кулибаев Объедков Подъячев Васильев Сафаров Зияев Исаев Раджабов
Файзуллаев Мухаммадиев Хамраев Бобоев Мусаев Умаров Кенжаев Жолдасбеков Есенбаев
Байжанов Тажибаев Усенов Асанбеков Чотонов Садыков Шукуров Кодиров""".split()
NO_FEMININE = {"Цой"}
#: Russian patronymics from male given names that have standard forms.
PATRONYMIC_BASE = """Алексей Сергей Андрей Дмитрий Юрий Пётр Фёдор Семён Матвей Николай Василий
Георгий Аркадий Виталий Евгений Игорь Максим Рустам Тимур Азамат Нурлан Серик Канат Эркин
Зафар Равшан Бахром Шухрат""".split()

# --- hand-written hard-negative look-alikes: distinct names, one or two letters apart ------

LOOKALIKE_GIVEN_M = [("Марат", "Мурат"), ("Хасан", "Хусан"), ("Асан", "Усен"),
                     ("Руслан", "Рустам"), ("Азамат", "Азат"), ("Фарид", "Фархад"),
                     ("Самат", "Санат"), ("Ерлан", "Ербол"), ("Шухрат", "Шавкат"),
                     ("Айдар", "Айбар"), ("Канат", "Санат"), ("Серик", "Берик"),
                     ("Арман", "Арсен"), ("Эльдар", "Эльмар"), ("Ринат", "Ришат"),
                     ("Ильнур", "Ильдус"), ("Давлат", "Даврон"), ("Бекзат", "Бекжан"),
                     ("Карим", "Халим"), ("Алибек", "Алишер"), ("Нурлан", "Нурбол"),
                     ("Жасур", "Жахонгир"), ("Тимур", "Дамир"), ("Ислам", "Ильхам"),
                     ("Сухроб", "Сухайл"), ("Улан", "Уран"), ("Мирлан", "Мирбек")]
LOOKALIKE_GIVEN_F = [("Алия", "Алина"), ("Асель", "Асем"), ("Айгерим", "Айгуль"),
                     ("Мадина", "Малика"), ("Дина", "Диана"), ("Зарина", "Карина"),
                     ("Нигина", "Нигора"), ("Сабина", "Сабира"), ("Алма", "Алла"),
                     ("Жанна", "Жанар"), ("Мария", "Марина"), ("Ольга", "Олеся"),
                     ("Фатима", "Фарида"), ("Саида", "Сайёра"), ("Малика", "Манзура"),
                     ("Айжан", "Айман"), ("Динара", "Дилара"), ("Гульнара", "Гульшат"),
                     ("Эльмира", "Эльвира"), ("Юлия", "Юлдуз")]
LOOKALIKE_FAMILY = [("Юсупов", "Юнусов"), ("Ахмедов", "Ахматов"), ("Рахимов", "Рашидов"),
                    ("Саидов", "Садыков"), ("Алиев", "Алимов"), ("Каримов", "Кадыров"),
                    ("Назаров", "Насыров"), ("Хасанов", "Хусанов"), ("Мамедов", "Мамаев"),
                    ("Шарипов", "Шакиров"), ("Турсунов", "Турганов"), ("Исаев", "Исаков"),
                    ("Умаров", "Усманов"), ("Бакиев", "Бакаев"), ("Сафаров", "Сабиров")]

# --- hand-written Uzbek pairs: Uzbek Cyrillic and the official Uzbek Latin spelling ------
# The Latin uses U+02BB for oʻ gʻ and U+02BC for the tutuq belgisi; apostrophe variants
# are substituted at build time as keyboards type them.

UZ_FAMILY = [("Тўхтаев", "Toʻxtayev"), ("Хўжаев", "Xoʻjayev"), ("Қодиров", "Qodirov"),
             ("Ғофуров", "Gʻofurov"), ("Йўлдошев", "Yoʻldoshev"), ("Ўроқов", "Oʻroqov"),
             ("Нўъмонов", "Noʻʼmonov"), ("Мўминов", "Moʻminov"), ("Тошпўлатов", "Toshpoʻlatov"),
             ("Эргашев", "Ergashev"), ("Усмонов", "Usmonov"), ("Абдуғаффоров", "Abdugʻafforov"),
             ("Қўчқоров", "Qoʻchqorov"), ("Раҳимов", "Rahimov"), ("Шукуров", "Shukurov"),
             ("Тўраев", "Toʻrayev"), ("Ҳайдаров", "Haydarov"), ("Мирзаев", "Mirzayev")]
UZ_GIVEN_M = [("Ғулом", "Gʻulom"), ("Ўткир", "Oʻtkir"), ("Маъруф", "Maʼruf"),
              ("Шаъбон", "Shaʼbon"), ("Дилшод", "Dilshod"), ("Жавлон", "Javlon"),
              ("Шоҳруҳ", "Shohruh"), ("Баҳодир", "Bahodir"), ("Ҳусниддин", "Husniddin"),
              ("Ёқуб", "Yoqub"), ("Ўлмас", "Oʻlmas"), ("Ғайрат", "Gʻayrat"),
              ("Қаҳрамон", "Qahramon"), ("Саъдулла", "Saʼdulla"), ("Тўлқин", "Toʻlqin"),
              ("Элёр", "Elyor"), ("Ойбек", "Oybek"), ("Зафар", "Zafar")]
UZ_GIVEN_F = [("Ўғилой", "Oʻgʻiloy"), ("Гўзал", "Goʻzal"), ("Муҳаббат", "Muhabbat"),
              ("Зулфия", "Zulfiya"), ("Нодира", "Nodira"), ("Фотима", "Fotima"),
              ("Хуршида", "Xurshida"), ("Зиёда", "Ziyoda"), ("Гулнора", "Gulnora"),
              ("Мўътабар", "Moʻʼtabar"), ("Дилноза", "Dilnoza"), ("Шаҳло", "Shahlo")]
APOSTROPHES = ["\u02bb", "'", "\u2018", "\u2019", "`", "\u02bc"]

# --- real spellings from public references (heads of state, athletes, writers) --------------
# (Cyrillic family, Cyrillic given, Latin family, Latin given, sex, nationality)

REAL = [("Назарбаев", "Нурсултан", "Nazarbayev", "Nursultan", "M", "KAZ"),
        ("Токаев", "Касым-Жомарт", "Tokayev", "Kassym-Jomart", "M", "KAZ"),
        ("Мирзиёев", "Шавкат", "Mirziyoyev", "Shavkat", "M", "UZB"),
        ("Рахмон", "Эмомали", "Rahmon", "Emomali", "M", "TJK"),
        ("Жапаров", "Садыр", "Japarov", "Sadyr", "M", "KGZ"),
        ("Бердымухамедов", "Сердар", "Berdimuhamedow", "Serdar", "M", "TKM"),
        ("Бердымухамедов", "Гурбангулы", "Berdimuhamedow", "Gurbanguly", "M", "TKM"),
        ("Каримов", "Ислам", "Karimov", "Islam", "M", "UZB"),
        ("Атамбаев", "Алмазбек", "Atambayev", "Almazbek", "M", "KGZ"),
        ("Жээнбеков", "Сооронбай", "Jeenbekov", "Sooronbay", "M", "KGZ"),
        ("Акаев", "Аскар", "Akayev", "Askar", "M", "KGZ"),
        ("Бакиев", "Курманбек", "Bakiyev", "Kurmanbek", "M", "KGZ"),
        ("Отунбаева", "Роза", "Otunbayeva", "Roza", "F", "KGZ"),
        ("Головкин", "Геннадий", "Golovkin", "Gennady", "M", "KAZ"),
        ("Кудайберген", "Димаш", "Kudaibergen", "Dimash", "M", "KAZ"),
        ("Ниязов", "Сапармурат", "Niyazov", "Saparmurat", "M", "TKM"),
        ("Арипов", "Абдулла", "Aripov", "Abdulla", "M", "UZB"),
        ("Аблязов", "Мухтар", "Ablyazov", "Mukhtar", "M", "KAZ"),
        ("Кулибаев", "Тимур", "Kulibayev", "Timur", "M", "KAZ"),
        ("Каримова", "Гульнара", "Karimova", "Gulnara", "F", "UZB"),
        ("Сулейменов", "Олжас", "Suleimenov", "Olzhas", "M", "KAZ"),
        ("Айтматов", "Чингиз", "Aitmatov", "Chingiz", "M", "KGZ"),
        ("Масимов", "Карим", "Massimov", "Karim", "M", "KAZ"),
        ("Смаилов", "Алихан", "Smailov", "Alikhan", "M", "KAZ"),
        ("Бектенов", "Олжас", "Bektenov", "Olzhas", "M", "KAZ"),
        ("Ашимбаев", "Маулен", "Ashimbayev", "Maulen", "M", "KAZ"),
        ("Саидов", "Бахтиёр", "Saidov", "Bakhtiyor", "M", "UZB"),
        ("Норов", "Владимир", "Norov", "Vladimir", "M", "UZB"),
        ("Путин", "Владимир", "Putin", "Vladimir", "M", "RUS"),
        ("Медведев", "Дмитрий", "Medvedev", "Dmitry", "M", "RUS"),
        ("Лавров", "Сергей", "Lavrov", "Sergey", "M", "RUS"),
        ("Шойгу", "Сергей", "Shoigu", "Sergei", "M", "RUS"),
        ("Навальный", "Алексей", "Navalny", "Alexei", "M", "RUS"),
        ("Ходорковский", "Михаил", "Khodorkovsky", "Mikhail", "M", "RUS"),
        ("Горбачёв", "Михаил", "Gorbachev", "Mikhail", "M", "RUS"),
        ("Хрущёв", "Никита", "Khrushchev", "Nikita", "M", "RUS"),
        ("Чайковский", "Пётр", "Tchaikovsky", "Pyotr", "M", "RUS"),
        ("Достоевский", "Фёдор", "Dostoevsky", "Fyodor", "M", "RUS"),
        ("Шарапова", "Мария", "Sharapova", "Maria", "F", "RUS"),
        ("Овечкин", "Александр", "Ovechkin", "Alexander", "M", "RUS"),
        ("Малкин", "Евгений", "Malkin", "Evgeni", "M", "RUS"),
        ("Кабаева", "Алина", "Kabaeva", "Alina", "F", "RUS"),
        ("Нурмагомедов", "Хабиб", "Nurmagomedov", "Khabib", "M", "RUS"),
        ("Исинбаева", "Елена", "Isinbayeva", "Yelena", "F", "RUS"),
        ("Гагарин", "Юрий", "Gagarin", "Yuri", "M", "RUS"),
        ("Терешкова", "Валентина", "Tereshkova", "Valentina", "F", "RUS"),
        ("Каспаров", "Гарри", "Kasparov", "Garry", "M", "RUS"),
        ("Карпов", "Анатолий", "Karpov", "Anatoly", "M", "RUS"),
        ("Солженицын", "Александр", "Solzhenitsyn", "Aleksandr", "M", "RUS"),
        ("Шостакович", "Дмитрий", "Shostakovich", "Dmitri", "M", "RUS"),
        ("Рахманинов", "Сергей", "Rachmaninoff", "Sergei", "M", "RUS"),
        ("Ростропович", "Мстислав", "Rostropovich", "Mstislav", "M", "RUS"),
        ("Плисецкая", "Майя", "Plisetskaya", "Maya", "F", "RUS"),
        ("Жуков", "Георгий", "Zhukov", "Georgy", "M", "RUS"),
        ("Горький", "Максим", "Gorky", "Maxim", "M", "RUS")]

#: Schemes of the iuliia package used for Latin renderings (its own names).
SCHEMES = ["ICAO_DOC_9303", "BGN_PCGN", "MVD_310", "MVD_782", "GOST_52535", "GOST_7034",
           "WIKIPEDIA", "YANDEX_MAPS", "YANDEX_MONEY", "TELEGRAM", "MOSMETRO", "SCIENTIFIC",
           "UNGEGN_1987", "ALA_LC_ALT"]
MRZ_SCHEMES = ["ICAO_DOC_9303", "MVD_310", "MVD_782", "GOST_52535"]

# --- keyboard neighbours for the typo model (ЙЦУКЕН and QWERTY rows) ----------------------

_ROWS = ["йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю", "qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _neighbours() -> dict[str, str]:
    out: dict[str, str] = {}
    for r, row in enumerate(_ROWS):
        block = 0 if r < 3 else 3
        for i, ch in enumerate(row):
            near = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            for rr in (r - 1, r + 1):
                if block <= rr < block + 3:
                    other = _ROWS[rr]
                    near += [other[j] for j in (i - 1, i, i + 1) if 0 <= j < len(other)]
            out[ch] = "".join(near)
    return out


NEAR = _neighbours()


def translate(text: str, scheme: str) -> str:
    out: str = getattr(iuliia, scheme).translate(text)
    # iuliia 0.13 writes Cyrillic ё/Ё for the Latin ë/Ë of BGN/PCGN, UNGEGN and the
    # scientific system; the published schemes mean the Latin letter.
    return out.replace("ё", "ë").replace("Ё", "Ë")


def feminine(family: str) -> str:
    if family in NO_FEMININE:
        return family
    if family.endswith("ий"):
        return family[:-2] + "ая"
    return family + "а"


def patronymic(father: str, sex: str) -> str:
    base = father
    if base.endswith("й"):
        stem = base[:-1] + "е"
    elif base.endswith("ь"):
        stem = base[:-1] + "е"
    else:
        stem = base + "о"
    return stem + ("вич" if sex == "M" else "вна")


class Builder:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.rows: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    # -- persons ---------------------------------------------------------------------------

    def dob(self, year: int | None = None) -> str:
        r = self.r
        y = year or r.randint(1950, 2006)
        return f"{y:04d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"

    def nat(self) -> str:
        return self.r.choice(["KAZ", "UZB", "KGZ", "TJK", "TKM", "RUS"])

    def person(self, sex: str | None = None) -> dict[str, Any]:
        r = self.r
        sex = sex or r.choice("MF")
        fam = r.choice(FAMILY)
        return {"family": fam if sex == "M" else feminine(fam),
                "given": r.choice(MALE if sex == "M" else FEMALE),
                "patronymic": patronymic(r.choice(PATRONYMIC_BASE), sex) if r.random() < 0.4
                else None,
                "dob": self.dob(), "nationality": self.nat(), "sex": sex}

    def latin(self, p: dict[str, Any], scheme: str, *, upper: bool | None = None,
              keep_patronymic: bool = True) -> dict[str, Any]:
        up = self.r.random() < 0.5 if upper is None else upper

        def tr(x: str | None) -> str | None:
            if x is None:
                return None
            t = translate(x, scheme)
            return t.upper() if up else t

        return {**p, "family": tr(p["family"]), "given": tr(p["given"]),
                "patronymic": tr(p["patronymic"]) if keep_patronymic else None}

    # -- rows --------------------------------------------------------------------------

    def add(self, a: dict[str, Any], b: dict[str, Any], match: bool, kind: str) -> None:
        if self.r.random() < 0.5:
            a, b = b, a
        row = {"a": a, "b": b, "match": match, "kind": kind}
        key = json.dumps(row, ensure_ascii=False, sort_keys=True)
        if key in self.seen or a == b:
            return
        self.seen.add(key)
        self.rows.append(row)

    def repeat(self, n: int, fn: Callable[[], None]) -> None:
        for _ in range(n):
            fn()

    # true matches ----------------------------------------------------------------------

    def iuliia_scheme(self) -> None:
        p = self.person()
        self.add(p, self.latin(p, self.r.choice(SCHEMES),
                               keep_patronymic=self.r.random() < 0.6), True, "iuliia_scheme")

    def iuliia_two_schemes(self) -> None:
        p = self.person()
        s1, s2 = self.r.sample(SCHEMES, 2)
        self.add(self.latin(p, s1), self.latin(p, s2), True, "iuliia_two_schemes")

    def typo(self, first_letters: bool) -> None:
        p = self.person()
        field = self.r.choice(["family", "given"])
        side = p if self.r.random() < 0.5 else self.latin(p, self.r.choice(SCHEMES))
        other = side
        for _ in range(20):
            other = {**side, field: self._slip(side[field], first_letters)}
            if other[field].lower() != side[field].lower():
                break
        else:
            return
        b = p if self.r.random() < 0.5 else self.latin(p, self.r.choice(SCHEMES))
        self.add(other, b, True, "typo_first_letters" if first_letters else "typo")

    def _slip(self, word: str, first: bool) -> str:
        r = self.r
        n = len(word)
        i = r.randint(0, min(1, n - 1)) if first else r.randint(2 if n > 4 else 1, n - 1)
        op = r.choice(["sub", "sub", "del", "ins", "swap", "double"])
        ch = word[i]
        low = ch.lower()
        if op == "sub" and low in NEAR:
            rep = r.choice(NEAR[low])
            rep = rep.upper() if ch.isupper() else rep
            return word[:i] + rep + word[i + 1:]
        if op == "del" and n > 4:
            return word[:i] + word[i + 1:]
        if op == "ins" and low in NEAR:
            rep = r.choice(NEAR[low])
            rep = rep.upper() if ch.isupper() else rep
            return word[:i] + rep + word[i:]
        if op == "swap" and i + 1 < n:
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        if op == "double":
            return word[:i] + ch + word[i:]
        return word[:i] + word[i + 1] + word[i] + word[i + 2:] if i + 1 < n else word[:-1]

    def yo_ye(self) -> None:
        r = self.r
        sex = r.choice("MF")
        fam = r.choice([f for f in FAMILY if "ё" in f] or FAMILY)
        given = r.choice([g for g in (MALE if sex == "M" else FEMALE) if "ё" in g] +
                         ([] if r.random() < 0.5 else [r.choice(MALE if sex == "M" else FEMALE)]))
        family = fam if sex == "M" else feminine(fam)
        p = {"family": family, "given": given, "patronymic": None,
             "dob": self.dob(), "nationality": self.nat(), "sex": sex}
        plain = {**p, "family": family.replace("ё", "е"), "given": given.replace("ё", "е")}
        if r.random() < 0.5:
            self.add(p, plain, True, "yo_ye")
        else:  # the Latin was made from the ё-less spelling, as most registers hold it
            self.add(p, self.latin(plain, r.choice(SCHEMES)), True, "yo_ye")

    def soft_signs(self) -> None:
        r = self.r
        p = self.person()
        for _ in range(20):
            if any(c in p["family"] + p["given"] + (p["patronymic"] or "") for c in "йъь"):
                break
            p = self.person()
        drop = {**p}
        for k in ("family", "given", "patronymic"):
            if drop[k]:
                drop[k] = (drop[k].replace("ь", "").replace("ъ", "")
                           .replace("й", "и" if r.random() < 0.7 else ""))
        if drop == p:
            return
        b = drop if r.random() < 0.5 else self.latin(drop, r.choice(SCHEMES))
        self.add(p, b, True, "soft_signs_yi")

    def uzbek(self) -> None:
        r = self.r
        sex = r.choice("MF")
        fc, fl = r.choice(UZ_FAMILY)
        gc, gl = r.choice(UZ_GIVEN_M if sex == "M" else UZ_GIVEN_F)
        if sex == "F":
            fc, fl = fc + "а", fl + "a"
        pat_c = pat_l = None
        if r.random() < 0.6:
            fatc, fatl = r.choice(UZ_GIVEN_M)
            pat_c = fatc + (" ўғли" if sex == "M" else " қизи")
            pat_l = fatl + (" oʻgʻli" if sex == "M" else " qizi")
        mark = r.choice(APOSTROPHES)

        def typed(s: str | None) -> str | None:
            if s is None:
                return None
            s = s.replace("\u02bb", mark) if mark != "\u02bc" else s.replace("\u02bb", "\u02bc")
            return s.upper() if upper else s

        upper = r.random() < 0.3
        cyr = {"family": fc, "given": gc, "patronymic": pat_c, "dob": self.dob(),
               "nationality": "UZB", "sex": sex}
        lat = {**cyr, "family": typed(fl), "given": typed(gl), "patronymic": typed(pat_l)}
        self.add(cyr, lat, True, "uzbek_apostrophe")

    def mrz(self, layout: str) -> None:
        """An MRZ name zone (TD1: 30, TD3: 39 characters), truncated as Doc 9303 does."""
        r = self.r
        width = 30 if layout == "TD1" else 39
        for _ in range(30):
            p = self.person()
            if p["patronymic"] is None:
                p = {**p, "patronymic": patronymic(r.choice(PATRONYMIC_BASE), p["sex"])}
            scheme = r.choice(MRZ_SCHEMES)

            def up(x: str, scheme: str = scheme) -> str:
                s = unicodedata.normalize("NFD", translate(x, scheme).upper())
                return "".join(c if "A" <= c <= "Z" else "<" for c in s
                               if not unicodedata.combining(c) and c not in "'’ʼʹ")

            zone = up(p["family"]) + "<<" + up(p["given"]) + "<" + up(p["patronymic"])
            if len(zone) > width:
                break
        zone = zone[:width]
        primary, _, secondary = zone.partition("<<")
        if r.random() < 0.5:  # as a reader gives it: spaces, no fillers
            fam, giv = " ".join(primary.split("<")).strip(), " ".join(
                x for x in secondary.split("<") if x)
        else:  # as copied from the zone, fillers kept
            fam, giv = primary, secondary.ljust(width - len(primary) - 2, "<")
        mrz = {**p, "family": fam, "given": giv, "patronymic": None}
        self.add(p, mrz, True, f"mrz_truncated_{layout.lower()}")

    def mrz_variants(self) -> None:
        """K/KH, Y/I, J/ZH, and the like, as MRZs of different offices write them."""
        r = self.r
        p = self.person()
        lat = self.latin(p, r.choice(MRZ_SCHEMES), upper=True)
        variants = [("KH", "H"), ("KH", "K"), ("IU", "YU"), ("YU", "IU"), ("IA", "YA"),
                    ("YA", "IA"), ("ZH", "J"), ("Y", "I"), ("I", "Y"), ("J", "ZH"),
                    ("E", "YE"), ("KS", "X"), ("DZH", "J")]
        for _ in range(10):
            a, b = r.choice(variants)
            field = r.choice(["family", "given"])
            if a in lat[field]:
                other = {**lat, field: lat[field].replace(a, b, 1)}
                self.add(lat if r.random() < 0.5 else p, other, True, "mrz_variants")
                return

    def real(self) -> None:
        r = self.r
        fc, gc, fl, gl, sex, nat = r.choice(REAL)
        dob = self.dob()
        cyr = {"family": fc, "given": gc, "patronymic": None, "dob": dob, "nationality": nat,
               "sex": sex}
        upper = r.random() < 0.5
        lat = {**cyr, "family": fl.upper() if upper else fl,
               "given": gl.upper() if upper else gl}
        self.add(cyr, lat, True, "real_spelling")

    # hard negatives --------------------------------------------------------------------

    def render(self, p: dict[str, Any]) -> dict[str, Any]:
        roll = self.r.random()
        if roll < 0.45:
            return p
        return self.latin(p, self.r.choice(SCHEMES))

    def twin(self) -> None:
        r = self.r
        sex = r.choice("MF")
        a, b = r.choice(LOOKALIKE_GIVEN_M if sex == "M" else LOOKALIKE_GIVEN_F)
        p = self.person(sex)
        q = {**p, "given": b}
        p = {**p, "given": a}
        self.add(self.render(p), self.render(q), False, "twin_lookalike")

    def twin_other_name(self) -> None:
        p = self.person()
        q = {**p, "given": self.r.choice(MALE if p["sex"] == "M" else FEMALE)}
        if q["given"] != p["given"]:
            self.add(self.render(p), self.render(q), False, "twin")

    def sibling(self) -> None:
        r = self.r
        p = self.person()
        sex = r.choice("MF")
        fam_m = p["family"] if p["sex"] == "M" else p["family"][:-1]
        father = r.choice(PATRONYMIC_BASE)
        p = {**p, "patronymic": patronymic(father, p["sex"]) if r.random() < 0.7 else None}
        y = int(p["dob"][:4])
        q = {"family": fam_m if sex == "M" else feminine(fam_m),
             "given": r.choice(MALE if sex == "M" else FEMALE),
             "patronymic": patronymic(father, sex) if r.random() < 0.7 else None,
             "dob": self.dob(min(2008, y + r.randint(1, 10))), "nationality": p["nationality"],
             "sex": sex}
        if q["given"] != p["given"]:
            self.add(self.render(p), self.render(q), False, "sibling")

    def spouse(self) -> None:
        r = self.r
        h = self.person("M")
        y = int(h["dob"][:4])
        w = {"family": feminine(h["family"]), "given": r.choice(FEMALE),
             "patronymic": patronymic(r.choice(PATRONYMIC_BASE), "F") if h["patronymic"] else None,
             "dob": self.dob(max(1950, min(2006, y + r.randint(-4, 4)))),
             "nationality": h["nationality"], "sex": "F" if r.random() < 0.85 else "X"}
        self.add(self.render(h), self.render(w), False, "spouse")

    def parent_child(self) -> None:
        r = self.r
        father = self.person("M")
        y = int(father["dob"][:4])
        if y > 1980:
            father = {**father, "dob": self.dob(r.randint(1950, 1980))}
            y = int(father["dob"][:4])
        son_named_after = r.random() < 0.5 and father["given"] in PATRONYMIC_BASE
        child_sex = "M" if son_named_after else r.choice("MF")
        child_given = father["given"] if son_named_after else r.choice(
            MALE if child_sex == "M" else FEMALE)
        base = father["given"] if father["given"] in PATRONYMIC_BASE else r.choice(
            PATRONYMIC_BASE)
        child = {"family": father["family"] if child_sex == "M" else feminine(father["family"]),
                 "given": child_given,
                 "patronymic": patronymic(base, child_sex) if r.random() < 0.7 else None,
                 "dob": self.dob(min(2006, y + r.randint(20, 35))),
                 "nationality": father["nationality"], "sex": child_sex}
        self.add(self.render(father), self.render(child), False, "parent_child")

    def namesake(self) -> None:
        r = self.r
        p = self.person()
        roll = r.random()
        if roll < 0.5:  # another year
            q = {**p, "dob": self.dob(int(p["dob"][:4]) + r.choice([-3, -2, -1, 1, 2, 3]))}
        elif roll < 0.8:  # same year, another month and day (no day/month swap)
            for _ in range(100):
                q = {**p, "dob": self.dob(int(p["dob"][:4]))}
                pm, pd = p["dob"][5:7], p["dob"][8:10]
                qm, qd = q["dob"][5:7], q["dob"][8:10]
                if pm != qm and pd != qd and not (pm == qd and pd == qm) and "01" not in (
                        pm, pd, qm, qd):
                    break
            else:
                return
        else:  # same date of birth, another father
            pats = [x for x in PATRONYMIC_BASE if p["patronymic"] is None
                    or patronymic(x, p["sex"]) != p["patronymic"]]
            f1, f2 = r.sample(pats, 2)
            p = {**p, "patronymic": patronymic(f1, p["sex"])}
            q = {**p, "patronymic": patronymic(f2, p["sex"])}
        self.add(self.render(p), self.render(q), False, "namesake")

    def family_lookalike(self) -> None:
        r = self.r
        a, b = r.choice(LOOKALIKE_FAMILY)
        p = self.person()
        fa, fb = (a, b) if p["sex"] == "M" else (feminine(a), feminine(b))
        q = {**p, "family": fb, "dob": self.dob(int(p["dob"][:4]))}
        if q["dob"] == p["dob"]:
            return
        self.add(self.render({**p, "family": fa}), self.render(q), False, "family_lookalike")

    def unrelated_same_dob(self) -> None:
        p, q = self.person(), self.person()
        q = {**q, "dob": p["dob"], "nationality": p["nationality"]}
        self.add(self.render(p), self.render(q), False, "unrelated_same_dob")

    def uzbek_relative(self) -> None:
        """Father and son in Uzbek Latin / Cyrillic: the son's patronymic is the father."""
        r = self.r
        fc, fl = r.choice(UZ_FAMILY)
        (gc, gl), (_sc, sl) = r.sample(UZ_GIVEN_M, 2)
        y = r.randint(1950, 1975)
        father = {"family": fc, "given": gc, "patronymic": None, "dob": self.dob(y),
                  "nationality": "UZB", "sex": "M"}
        mark = r.choice(APOSTROPHES)
        son = {"family": fl.replace("\u02bb", mark), "given": sl.replace("\u02bb", mark),
               "patronymic": gl.replace("\u02bb", mark) + f" o{mark}g{mark}li",
               "dob": self.dob(y + r.randint(20, 32)), "nationality": "UZB", "sex": "M"}
        self.add(father, son, False, "uzbek_parent_child")


def build(seed: int = SEED) -> list[dict[str, Any]]:
    b = Builder(seed)
    plan: list[tuple[int, Callable[[], None]]] = [
        (110, b.iuliia_scheme), (60, b.iuliia_two_schemes), (80, lambda: b.typo(False)),
        (60, lambda: b.typo(True)), (50, b.yo_ye), (50, b.soft_signs), (90, b.uzbek),
        (45, lambda: b.mrz("TD1")), (30, lambda: b.mrz("TD3")), (60, b.mrz_variants),
        (55, b.real),
        (110, b.twin), (50, b.twin_other_name), (90, b.sibling), (70, b.spouse),
        (80, b.parent_child), (100, b.namesake), (70, b.family_lookalike),
        (50, b.unrelated_same_dob), (40, b.uzbek_relative),
    ]
    for n, fn in plan:
        b.repeat(n, fn)
    return b.rows


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="build the independent labelled set")
    ap.add_argument("--seed", type=int, default=SEED,
                    help="another seed draws other persons, typos and schemes from the "
                         "same hand-written lists (a check for over-fitting)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = build(args.seed)
    out = args.out
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    pos = sum(r["match"] for r in rows)
    print(f"{out.name}: {len(rows)} pairs, {pos} matches, {len(rows) - pos} non-matches")


if __name__ == "__main__":
    main()
