"""Which way a model translates: the target language a caller asks for, checked against what the model
knows, and the route taken (the trained direction, a zero-shot one, or through a pivot language).

    languages = ModelLanguages.of(model.config, model.generation_config, "outputs/run")
    route = languages.route("es", "fr", pivot="en")
    route.kind                  # "pivot" (es-fr was not trained; es-en and en-fr were)
    [str(leg) for leg in route.legs]    # ["es-en", "en-fr"]
    route.legs[0].forced_bos_token_id   # the id of __en__: generate(..., forced_bos_token_id=...)

A multilingual checkpoint records `lang_to_id` ({code: id of its target-language token}) in its config and
generation config, and the directions it was trained on in `config.language_pairs`; the decoder writes the
language whose token it is forced to start with. A checkpoint without `lang_to_id` is bilingual: it writes
one language (its run_config.yaml's `target_lang`, when that file is there) and decodes as it always did.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .languages import LanguagePair, languages_of, parse_language_pairs
from .pretrained import read_run_config

# what the route's kind means, for logs and for anyone reading `Route.kind`
KINDS = {
    "bilingual": "a bilingual model: it writes the one language it was trained to write",
    "trained": "a direction the model was trained on",
    "unchecked": "the target language chosen; no source language given, so the direction was not checked",
    "zero-shot": "a direction the model was not trained on, translated directly (zero-shot: expect some output "
                 "in the wrong language)",
    "pivot": "a direction the model was not trained on, translated through a pivot language",
}


@dataclass(frozen=True)
class Leg:
    """One pass through the model: `forced_bos_token_id` makes the decoder write `target_lang` (None: a
    bilingual model, which needs no forcing)."""
    source_lang: str | None
    target_lang: str | None
    forced_bos_token_id: int | None

    def __str__(self) -> str:
        return f"{self.source_lang or '?'}-{self.target_lang or '?'}"


@dataclass(frozen=True)
class Route:
    kind: str               # one of KINDS
    legs: tuple[Leg, ...]   # two legs through the pivot, else one

    @property
    def pivot(self) -> str | None:
        return self.legs[0].target_lang if len(self.legs) > 1 else None

    @property
    def target_lang(self) -> str | None:
        return self.legs[-1].target_lang

    def describe(self) -> str:
        """One log line: the legs and what the kind means."""
        return f"{' -> '.join(str(leg) for leg in self.legs)}: {KINDS[self.kind]}"


@dataclass(frozen=True)
class ModelLanguages:
    lang_to_id: dict[str, int] | None   # None: bilingual
    pairs: tuple[LanguagePair, ...]     # the directions trained (multilingual), else ()
    own: tuple[str | None, str | None] = (None, None)  # a bilingual model's (source, target), when recorded

    @classmethod
    def of(cls, config, generation_config=None, model_dir=None) -> "ModelLanguages":
        """What `config` (and `generation_config`, for checkpoints that keep the mapping only there) say; for a
        bilingual model, its languages from `model_dir`'s run_config.yaml when present."""
        lang_to_id = getattr(config, "lang_to_id", None) or getattr(generation_config, "lang_to_id", None)
        if lang_to_id:
            pairs = getattr(config, "language_pairs", None)
            return cls(dict(lang_to_id), tuple(parse_language_pairs(pairs)) if pairs else ())
        saved = read_run_config(Path(str(model_dir)) / "run_config.yaml") if model_dir is not None else {}
        own = tuple(value if isinstance(value, str) else None for value in (saved.get("source_lang"),
                                                                          saved.get("target_lang")))
        return cls(None, (), own)

    @classmethod
    def of_folder(cls, model_dir) -> "ModelLanguages":
        """The same from a model folder's config.json and generation_config.json, before any weights load (a Hub
        id or a folder without them reads as bilingual, its languages unknown)."""
        def read(name):
            path = Path(str(model_dir)) / name
            try:
                values = json.loads(path.read_text("utf-8")) if path.is_file() else {}
            except (ValueError, UnicodeDecodeError):
                values = {}  # loading the model reports a broken file, with its own message
            return SimpleNamespace(**values) if isinstance(values, dict) else SimpleNamespace()

        return cls.of(read("config.json"), read("generation_config.json"), model_dir)

    def default_source(self, target_lang: str) -> str | None:
        """The source language when none is given: the only one the model was trained to translate into
        `target_lang` (a bilingual model's own)."""
        if not self.multilingual:
            return self.own[0]
        sources = list(dict.fromkeys(pair.source for pair in self.pairs if pair.target == target_lang))
        return sources[0] if len(sources) == 1 else None

    @property
    def multilingual(self) -> bool:
        return self.lang_to_id is not None

    @property
    def targets(self) -> list[str]:
        """The languages the model can be asked to write."""
        return list(self.lang_to_id) if self.multilingual else [code for code in self.own[1:] if code]

    @property
    def known(self) -> list[str]:
        """Every language the model has seen, as source or target."""
        return list(dict.fromkeys(languages_of(self.pairs) + self.targets))

    def default_target(self) -> str | None:
        """The target when none is asked for: a bilingual model's own; a multilingual one writing one language."""
        return self.targets[0] if len(self.targets) == 1 else None

    def route(self, source_lang: str | None = None, target_lang: str | None = None,
              pivot: str | None = None) -> Route:
        """How to translate `source_lang` into `target_lang`; ValueError (one line naming the languages the
        model knows) for a request it cannot serve."""
        if not self.multilingual:
            return self._bilingual_route(source_lang, target_lang, pivot)
        if target_lang is None:
            target_lang = self.default_target()
            if target_lang is None:
                raise ValueError(f"this model writes {', '.join(sorted(self.targets))}; choose one with target_lang "
                                 "(--target_lang)")
        self._check_known("target_lang", target_lang, self.targets, "writes")
        if source_lang is not None:
            self._check_known("source_lang", source_lang, self.known, "knows")
            if source_lang == target_lang:
                raise ValueError(f"source_lang and target_lang are both {source_lang!r}; choose another target")
        if pivot is not None:
            return self._pivot_route(source_lang, target_lang, pivot)
        leg = Leg(source_lang, target_lang, self.lang_to_id[target_lang])
        if source_lang is None:
            return Route("unchecked", (leg,))
        trained = not self.pairs or LanguagePair(source_lang, target_lang) in self.pairs
        return Route("trained" if trained else "zero-shot", (leg,))

    def _pivot_route(self, source_lang: str | None, target_lang: str, pivot: str) -> Route:
        if source_lang is None:
            raise ValueError(f"pivot={pivot!r} needs source_lang (--source_lang): the pivot is taken only for a "
                             "direction the model was not trained on")
        direct = Leg(source_lang, target_lang, self.lang_to_id[target_lang])
        if LanguagePair(source_lang, target_lang) in self.pairs or not self.pairs:
            return Route("trained", (direct,))  # no detour for a direction it knows
        if pivot in (source_lang, target_lang):
            raise ValueError(f"pivot={pivot!r} is an end of {source_lang}-{target_lang}; pivot through a third "
                             "language (e.g. en)")
        self._check_known("pivot", pivot, self.targets, "writes")
        missing = [str(pair) for pair in (LanguagePair(source_lang, pivot), LanguagePair(pivot, target_lang))
                   if pair not in self.pairs]
        if missing:
            raise ValueError(f"cannot pivot {source_lang}-{target_lang} through {pivot}: {', '.join(missing)} "
                             f"{'was' if len(missing) == 1 else 'were'} not trained (trained: "
                             f"{','.join(map(str, self.pairs))}); pick another pivot or drop it (zero-shot)")
        return Route("pivot", (Leg(source_lang, pivot, self.lang_to_id[pivot]), Leg(pivot, target_lang,
                                                                                  self.lang_to_id[target_lang])))

    def _bilingual_route(self, source_lang, target_lang, pivot) -> Route:
        own_source, own_target = self.own
        if pivot is not None:
            raise ValueError(f"pivot={pivot!r}: this model is bilingual (no lang_to_id in its config), so it has "
                             "one direction and nothing to pivot through; drop the pivot")
        for name, asked, own in (("target_lang", target_lang, own_target), ("source_lang", source_lang, own_source)):
            if asked is not None and own is not None and asked != own:
                raise ValueError(f"{name}={asked!r}: this model is bilingual and translates {own_source}-{own_target} "
                                 f"only (no lang_to_id in its config); use a multilingual model for {asked}")
        return Route("bilingual", (Leg(source_lang or own_source, target_lang or own_target, None),))

    def _check_known(self, name: str, code: str, allowed: list[str], verb: str) -> None:
        if code not in allowed:
            raise ValueError(f"{name}={code!r}: this model was not trained on it; it {verb} "
                             f"{', '.join(sorted(allowed))} (config.{'lang_to_id' if verb == 'writes' else 'language_pairs'})")
