"""Translate text with a trained seq2seq model (transformers 5 removed `pipeline("translation")`).

    translator = Translator.from_pretrained("outputs/translate_toy_en_es")
    translator(["The cat sees a dog."])                 # -> ["El gato ve a un perro."]
    translator("The cat sees a dog.", num_beams=1)      # a str in, a str out

Decoding defaults come from the checkpoint's `generation_config.json` (the recipe saves the beam size,
length penalty and max length of its final evaluation there); every call may override them. The run's
source prefix (config.json's `task_specific_params`, or run_config.yaml) goes before every input, as in
training and in the interactive engine. A blank input line translates to an empty line.

A multilingual model (one whose config holds `lang_to_id`) writes the language it is asked for:
`target_lang="de"` (at load or per call) forces its decoder to start with the `__de__` token. `source_lang`
lets the direction be checked against the ones trained (`config.language_pairs`): one it was not trained
on is translated directly (zero-shot, said in a warning), or through a pivot language with `pivot="en"`
(X -> en -> Y). `translator.last_route` tells how the latest call went (see `directions.py`).

`engine="ct2"` decodes with a CTranslate2 export of the model (`bigmodel-hf export ct2`, see
`export/ct2.py`) instead of `generate()`, behind the same call; `engine="auto"` picks it when the folder
is such an export or holds one in `ct2/`.
"""

import logging
import math

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from .devices import default_device, parse_device  # noqa: F401 (part of this module's API)
from .pretrained import check_model_location, one_line_load_errors, source_prefix_of
from .decoding import decoding_settings, translate_texts
from .directions import ModelLanguages, Route

logger = logging.getLogger(__name__)


def check_decoding_options(num_beams=None, length_penalty=None, max_new_tokens=None, batch_size=None) -> None:
    """ValueError (one line, naming the option) for a decoding option generate would reject or ignore.
    None means "the model's default"."""
    for name, value in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"--{name} must be a positive whole number, got {value!r}.")
    if length_penalty is not None and (not isinstance(length_penalty, (int, float)) or not math.isfinite(length_penalty)):
        raise ValueError(f"--length_penalty must be a finite number, got {length_penalty!r}.")


ENGINES = ("auto", "torch", "ct2")


def resolve_engine(engine: str, name_or_path) -> str:
    """"torch" or "ct2" for `engine` and the model folder; ValueError (one line) for an unknown engine."""
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine!r} is not an engine; use one of {list(ENGINES)}.")
    if engine != "auto":
        return engine
    from .export.ct2 import find_ct2_export

    if find_ct2_export(name_or_path) is None:
        return "torch"
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return "torch"
    return "ct2"


class Translator:
    def __init__(self, model, tokenizer, device: str | torch.device | None = None, source_prefix: str = "",
                 ct2_model=None, languages: ModelLanguages | None = None, source_lang: str | None = None,
                 target_lang: str | None = None, pivot: str | None = None):
        """`ct2_model` (an `export.ct2_runtime.CT2Model`) decodes instead of `model` when given. `source_lang`,
        `target_lang` and `pivot` are the direction of every call that does not name its own; `languages`
        (default: read from the model's config) is what the model can write."""
        self.device = parse_device(device)
        self.ct2_model = ct2_model
        self.model = model.to(self.device).eval() if model is not None else None
        self.tokenizer = tokenizer
        self.source_prefix = source_prefix or ""
        if languages is None:
            languages = ModelLanguages.of(model.config, model.generation_config) if model is not None \
                else ModelLanguages(None, ())
        self.languages = languages
        self.direction = dict(source_lang=source_lang, target_lang=target_lang, pivot=pivot)
        # a direction the model cannot serve fails here, at load; a multilingual model loaded without a target
        # language waits for the call's (`last_route` None until then)
        self.last_route: Route | None = languages.route(**self.direction) \
            if target_lang or not languages.multilingual or languages.default_target() else None
        self._announced: set[Route] = set()

    @property
    def engine(self) -> str:
        return "ct2" if self.ct2_model is not None else "torch"

    @classmethod
    def from_pretrained(cls, name_or_path, device=None, dtype=None, trust_remote_code: bool = False,
                        load_legacy_bin: bool = False, engine: str = "auto", intra_threads: int = 0,
                        source_lang: str | None = None, target_lang: str | None = None,
                        pivot: str | None = None) -> "Translator":
        """Load model and tokenizer from a local folder or Hub id (ours without remote code once
        `bigmodel_hf` is imported; other checkpoints as `AutoModelForSeq2SeqLM` loads them).

        Weights come from safetensors only; `load_legacy_bin=True` also accepts a pickled `pytorch_model.bin`.
        Code shipped with the model runs only with `trust_remote_code=True`. `engine`: "torch" (`generate()`),
        "ct2" (the folder's CTranslate2 export, `intra_threads` threads, 0 = CTranslate2's choice) or "auto".
        `source_lang` / `target_lang` / `pivot`: the default direction (see the module docstring).
        """
        direction = dict(source_lang=source_lang, target_lang=target_lang, pivot=pivot)
        if resolve_engine(engine, name_or_path) == "ct2":
            from .export.ct2_runtime import CT2Model

            device = parse_device(device or "cpu")
            if device.type not in ("cpu", "cuda"):
                raise ValueError(f"--device {device}: CTranslate2 runs on cpu or cuda; use one of those or --engine torch.")
            ct2_model = CT2Model(name_or_path, device=device.type, intra_threads=intra_threads)
            return cls(None, ct2_model.tokenizer, device, ct2_model=ct2_model,
                       languages=ModelLanguages.of(ct2_model.language_config, None, name_or_path), **direction)
        check_model_location(name_or_path)
        device = parse_device(device)
        with one_line_load_errors(name_or_path):
            model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, dtype=dtype,
                                                          trust_remote_code=bool(trust_remote_code),
                                                          use_safetensors=None if load_legacy_bin else True)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=bool(trust_remote_code))
        return cls(model, tokenizer, device, source_prefix=source_prefix_of(model.config, name_or_path),
                   languages=ModelLanguages.of(model.config, model.generation_config, name_or_path), **direction)

    def __call__(
        self,
        texts: str | list[str],
        num_beams: int | None = None,
        length_penalty: float | None = None,
        max_new_tokens: int | None = None,
        batch_size: int = 32,
        source_lang: str | None = None,
        target_lang: str | None = None,
        pivot: str | None = None,
    ) -> str | list[str]:
        """`source_lang` / `target_lang` / `pivot` replace the translator's own direction for this call."""
        check_decoding_options(num_beams, length_penalty, max_new_tokens, batch_size)
        route = self.route(source_lang, target_lang, pivot)
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        outputs = [""] * len(texts)
        # a blank line is no sentence: the model would invent one, so it stays blank (and keeps its place)
        wanted = [i for i, text in enumerate(texts) if text.strip()]
        for leg_number, leg in enumerate(route.legs):
            translated = self._decode([texts[i] if leg_number == 0 else outputs[i] for i in wanted], leg,
                                      num_beams, length_penalty, max_new_tokens, batch_size, leg_number == 0)
            for i, text in zip(wanted, translated):
                outputs[i] = text
            wanted = [i for i in wanted if outputs[i].strip()]  # a pivot text the model left blank stays blank
        return outputs[0] if single else outputs

    def route(self, source_lang: str | None = None, target_lang: str | None = None, pivot: str | None = None) -> Route:
        """The route a call with these languages takes (the translator's own where None), kept as `last_route`;
        a zero-shot or pivot route is logged once. ValueError (one line) for one the model cannot serve."""
        asked = dict(source_lang=source_lang, target_lang=target_lang, pivot=pivot)
        route = self.languages.route(**{name: asked[name] or value for name, value in self.direction.items()})
        if route.kind in ("zero-shot", "pivot") and route not in self._announced:
            self._announced.add(route)
            logger.warning(route.describe())
        self.last_route = route
        return route

    def _decode(self, texts: list[str], leg, num_beams, length_penalty, max_new_tokens, batch_size,
                from_source: bool) -> list[str]:
        """One pass through the model in the direction of `leg`; the source prefix goes before real sources
        only (not before a pivot text)."""
        if not texts:
            return []
        if self.ct2_model is not None:
            settings = self.ct2_model.settings(num_beams, length_penalty, max_new_tokens)
            return self.ct2_model.translate(texts, num_beams=settings.num_beams, length_penalty=settings.length_penalty,
                                            max_new_tokens=settings.max_new_tokens, batch_size=batch_size,
                                            forced_bos_token_id=leg.forced_bos_token_id)
        settings = decoding_settings(self.model.generation_config, num_beams, length_penalty, max_new_tokens)
        forced = {} if leg.forced_bos_token_id is None else {"forced_bos_token_id": leg.forced_bos_token_id}
        return translate_texts(
            self.model, self.tokenizer, texts,
            num_beams=settings.num_beams, length_penalty=settings.length_penalty,
            # the language token is one of the new tokens: the text keeps its full budget
            max_new_tokens=settings.max_new_tokens + bool(forced),
            batch_size=batch_size,
            source_prefix=self.source_prefix if from_source else "",
            **forced,
        )
