"""Translate text with a trained seq2seq model (transformers 5 removed `pipeline("translation")`).

    translator = Translator.from_pretrained("outputs/translate_toy_en_es")
    translator(["The cat sees a dog."])                 # -> ["El gato ve a un perro."]
    translator("The cat sees a dog.", num_beams=1)      # a str in, a str out

Decoding defaults come from the checkpoint's `generation_config.json` (the recipe saves the beam size,
length penalty and max length of its final evaluation there); every call may override them. The run's
source prefix (config.json's `task_specific_params`, or run_config.yaml) goes before every input, as in
training and in the interactive engine. A blank input line translates to an empty line.
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


class Translator:
    def __init__(self, model, tokenizer, device: str | torch.device | None = None, source_prefix: str = ""):
        self.device = parse_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.source_prefix = source_prefix or ""

    @classmethod
    def from_pretrained(cls, name_or_path, device=None, dtype=None, trust_remote_code: bool = False,
                        load_legacy_bin: bool = False) -> "Translator":
        """Load model and tokenizer from a local folder or Hub id (ours without remote code once
        `bigmodel_hf` is imported; other checkpoints as `AutoModelForSeq2SeqLM` loads them).

        Weights come from safetensors only; `load_legacy_bin=True` also accepts a pickled `pytorch_model.bin`.
        Code shipped with the model runs only with `trust_remote_code=True`.
        """
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
        settings = decoding_settings(self.model.generation_config, num_beams, length_penalty, max_new_tokens)
        # a blank line is no sentence: the model would invent one, so it stays blank (and keeps its place)
        wanted = [i for i, text in enumerate(texts) if text.strip()]
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
