"""A synthetic English -> Spanish corpus, generated in code: data for demos and tests on any machine.

The sentences follow a small grammar with the parts of translation a model has to learn: a different
vocabulary (so copying the source scores near zero BLEU), noun gender and number agreement of articles
and adjectives, adjectives moving behind the noun, verb conjugation, and the personal `a` (`a + el = al`)
before animate objects. Same seed, same corpus.
"""

import random

# noun: (english singular, english plural, spanish singular, spanish plural, gender, animate)
NOUNS = [
    ("cat", "cats", "gato", "gatos", "m", True), ("dog", "dogs", "perro", "perros", "m", True),
    ("girl", "girls", "niña", "niñas", "f", True), ("boy", "boys", "niño", "niños", "m", True),
    ("teacher", "teachers", "maestra", "maestras", "f", True), ("doctor", "doctors", "médico", "médicos", "m", True),
    ("bird", "birds", "pájaro", "pájaros", "m", True), ("horse", "horses", "caballo", "caballos", "m", True),
    ("woman", "women", "mujer", "mujeres", "f", True), ("man", "men", "hombre", "hombres", "m", True),
    ("friend", "friends", "amiga", "amigas", "f", True), ("cow", "cows", "vaca", "vacas", "f", True),
    ("house", "houses", "casa", "casas", "f", False), ("book", "books", "libro", "libros", "m", False),
    ("table", "tables", "mesa", "mesas", "f", False), ("car", "cars", "coche", "coches", "m", False),
    ("apple", "apples", "manzana", "manzanas", "f", False), ("letter", "letters", "carta", "cartas", "f", False),
    ("window", "windows", "ventana", "ventanas", "f", False), ("tree", "trees", "árbol", "árboles", "m", False),
    ("river", "rivers", "río", "ríos", "m", False), ("city", "cities", "ciudad", "ciudades", "f", False),
    ("flower", "flowers", "flor", "flores", "f", False), ("bread", "breads", "pan", "panes", "m", False),
]
# adjective: (english, masculine singular, feminine singular); plurals follow Spanish rules below
ADJECTIVES = [
    ("red", "rojo", "roja"), ("small", "pequeño", "pequeña"), ("big", "grande", "grande"),
    ("old", "viejo", "vieja"), ("new", "nuevo", "nueva"), ("white", "blanco", "blanca"),
    ("black", "negro", "negra"), ("happy", "feliz", "feliz"), ("tall", "alto", "alta"),
    ("beautiful", "hermoso", "hermosa"), ("green", "verde", "verde"), ("tired", "cansado", "cansada"),
]
# verb: (english 3rd singular, english plural, spanish 3rd singular, spanish 3rd plural)
VERBS = [
    ("sees", "see", "ve", "ven"), ("wants", "want", "quiere", "quieren"), ("has", "have", "tiene", "tienen"),
    ("finds", "find", "encuentra", "encuentran"), ("looks for", "look for", "busca", "buscan"),
    ("draws", "draw", "dibuja", "dibujan"), ("buys", "buy", "compra", "compran"),
    ("watches", "watch", "mira", "miran"), ("needs", "need", "necesita", "necesitan"),
]
NUMBERS = [("two", "dos"), ("three", "tres"), ("four", "cuatro"), ("five", "cinco")]
PLACES = [("in the city", "en la ciudad"), ("near the river", "cerca del río"), ("at home", "en casa"),
          ("today", "hoy"), ("in the morning", "por la mañana"), ("every day", "todos los días")]


def _plural_adjective(word: str) -> str:
    if word.endswith("z"):
        return word[:-1] + "ces"
    return word + ("s" if word[-1] in "aeiou" else "es")


def _noun_phrase(rng: random.Random, animate: bool | None = None) -> tuple[str, str, bool, bool]:
    """(english, spanish, plural, animate) for a determiner + noun (+ adjective) phrase."""
    choices = [n for n in NOUNS if animate is None or n[5] == animate]
    en_sg, en_pl, es_sg, es_pl, gender, is_animate = rng.choice(choices)
    plural = rng.random() < 0.35
    number = rng.choice(NUMBERS) if plural and rng.random() < 0.4 else None
    definite = number is None and rng.random() < 0.6
    if number:
        en_det, es_det = number
    elif definite:
        en_det = "the"
        es_det = {("m", False): "el", ("f", False): "la", ("m", True): "los", ("f", True): "las"}[(gender, plural)]
    else:
        en_det = "some" if plural else "a"  # "a" becomes "an" below when needed
        es_det = {("m", False): "un", ("f", False): "una", ("m", True): "unos", ("f", True): "unas"}[(gender, plural)]
    en_noun, es_noun = (en_pl, es_pl) if plural else (en_sg, es_sg)
    english, spanish = [en_det], [es_det]
    if rng.random() < 0.5:
        adj_en, adj_m, adj_f = rng.choice(ADJECTIVES)
        adj_es = adj_f if gender == "f" else adj_m
        adj_es = _plural_adjective(adj_es) if plural else adj_es
        english += [adj_en, en_noun]
        spanish += [es_noun, adj_es]  # Spanish adjectives follow the noun
    else:
        english.append(en_noun)
        spanish.append(es_noun)
    if english[0] == "a" and english[1][0] in "aeiou":
        english[0] = "an"
    return " ".join(english), " ".join(spanish), plural, is_animate


def _personal_a(spanish_object: str) -> str:
    """Animate direct objects take `a`; `a el` contracts to `al`."""
    return "al " + spanish_object[3:] if spanish_object.startswith("el ") else "a " + spanish_object


def toy_sentence_pair(rng: random.Random) -> tuple[str, str]:
    """One (english, spanish) sentence pair."""
    subj_en, subj_es, subj_plural, _ = _noun_phrase(rng, animate=True)
    verb_en_sg, verb_en_pl, verb_es_sg, verb_es_pl = rng.choice(VERBS)
    obj_en, obj_es, _, obj_animate = _noun_phrase(rng)
    if obj_animate:
        obj_es = _personal_a(obj_es)
    english = [subj_en, verb_en_pl if subj_plural else verb_en_sg, obj_en]
    spanish = [subj_es, verb_es_pl if subj_plural else verb_es_sg, obj_es]
    if rng.random() < 0.3:
        place_en, place_es = rng.choice(PLACES)
        english.append(place_en)
        spanish.append(place_es)
    return _sentence(english), _sentence(spanish)


def _sentence(words: list[str]) -> str:
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def toy_translation_pairs(count: int, seed: int = 0) -> list[dict]:
    """`count` distinct pairs as `{"en": ..., "es": ...}` rows, deterministic for a seed."""
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < count:
        en, es = toy_sentence_pair(rng)
        if en not in seen:
            seen.add(en)
            rows.append({"en": en, "es": es})
    return rows


def write_toy_translation_corpus(directory, train: int = 20000, validation: int = 500, test: int = 500, seed: int = 0):
    """Write train/validation/test `.jsonl` files (disjoint sentences) under `directory`; return their paths."""
    import json
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = toy_translation_pairs(train + validation + test, seed)
    splits = {"train": rows[:train], "validation": rows[train:train + validation], "test": rows[train + validation:]}
    paths = {}
    for split, split_rows in splits.items():
        paths[split] = directory / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows), "utf-8")
    return paths
