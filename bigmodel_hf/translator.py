"""Translate text with a trained seq2seq model (transformers 5 removed `pipeline("translation")`).

    translator = Translator.from_pretrained("outputs/translate_toy_en_es")
    translator(["The cat sees a dog."])                 # -> ["El gato ve a un perro."]
    translator("The cat sees a dog.", num_beams=1)      # a str in, a str out

Decoding defaults come from the checkpoint's `generation_config.json` (the recipe saves the beam size,
length penalty and max length of its final evaluation there); every call may override them. The run's
source prefix (config.json's `task_specific_params`, or run_config.yaml) goes before every input, as in
training and in the interactive engine. A blank input line translates to an empty line.

`engine="ct2"` decodes with a CTranslate2 export of the model (`bigmodel-hf export ct2`, see
`export/ct2.py`) instead of `generate()`, behind the same call; `engine="auto"` picks it when the folder
is such an export or holds one in `ct2/`.
"""

import math

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from .devices import default_device, parse_device  # noqa: F401 (part of this module's API)
from .pretrained import check_model_location, one_line_load_errors, source_prefix_of
from .decoding import decoding_settings, translate_texts


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
                 ct2_model=None):
        """`ct2_model` (an `export.ct2_runtime.CT2Model`) decodes instead of `model` when given."""
        self.device = parse_device(device)
        self.ct2_model = ct2_model
        self.model = model.to(self.device).eval() if model is not None else None
        self.tokenizer = tokenizer
        self.source_prefix = source_prefix or ""

    @property
    def engine(self) -> str:
        return "ct2" if self.ct2_model is not None else "torch"

    @classmethod
    def from_pretrained(cls, name_or_path, device=None, dtype=None, trust_remote_code: bool = False,
                        load_legacy_bin: bool = False, engine: str = "auto", intra_threads: int = 0) -> "Translator":
        """Load model and tokenizer from a local folder or Hub id (ours without remote code once
        `bigmodel_hf` is imported; other checkpoints as `AutoModelForSeq2SeqLM` loads them).

        Weights come from safetensors only; `load_legacy_bin=True` also accepts a pickled `pytorch_model.bin`.
        Code shipped with the model runs only with `trust_remote_code=True`. `engine`: "torch" (`generate()`),
        "ct2" (the folder's CTranslate2 export, `intra_threads` threads, 0 = CTranslate2's choice) or "auto".
        """
        if resolve_engine(engine, name_or_path) == "ct2":
            from .export.ct2_runtime import CT2Model

            device = parse_device(device or "cpu")
            if device.type not in ("cpu", "cuda"):
                raise ValueError(f"--device {device}: CTranslate2 runs on cpu or cuda; use one of those or --engine torch.")
            ct2_model = CT2Model(name_or_path, device=device.type, intra_threads=intra_threads)
            return cls(None, ct2_model.tokenizer, device, ct2_model=ct2_model)
        check_model_location(name_or_path)
        device = parse_device(device)
        with one_line_load_errors(name_or_path):
            model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, dtype=dtype,
                                                          trust_remote_code=bool(trust_remote_code),
                                                          use_safetensors=None if load_legacy_bin else True)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=bool(trust_remote_code))
        return cls(model, tokenizer, device, source_prefix=source_prefix_of(model.config, name_or_path))

    def __call__(
        self,
        texts: str | list[str],
        num_beams: int | None = None,
        length_penalty: float | None = None,
        max_new_tokens: int | None = None,
        batch_size: int = 32,
    ) -> str | list[str]:
        check_decoding_options(num_beams, length_penalty, max_new_tokens, batch_size)
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        # a blank line is no sentence: the model would invent one, so it stays blank (and keeps its place)
        wanted = [i for i, text in enumerate(texts) if text.strip()]
        if self.ct2_model is not None:
            settings = self.ct2_model.settings(num_beams, length_penalty, max_new_tokens)
            translated = self.ct2_model.translate(
                [texts[i] for i in wanted], num_beams=settings.num_beams, length_penalty=settings.length_penalty,
                max_new_tokens=settings.max_new_tokens, batch_size=batch_size) if wanted else []
        else:
            settings = decoding_settings(self.model.generation_config, num_beams, length_penalty, max_new_tokens)
            translated = translate_texts(
                self.model, self.tokenizer, [texts[i] for i in wanted],
                num_beams=settings.num_beams, length_penalty=settings.length_penalty,
                max_new_tokens=settings.max_new_tokens,
                batch_size=batch_size,
                source_prefix=self.source_prefix,
            ) if wanted else []
        outputs = [""] * len(texts)
        for i, text in zip(wanted, translated):
            outputs[i] = text
        return outputs[0] if single else outputs
