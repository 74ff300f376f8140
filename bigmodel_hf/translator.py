"""Translate text with a trained seq2seq model (transformers 5 removed `pipeline("translation")`).

    translator = Translator.from_pretrained("outputs/translate_toy_en_es")
    translator(["The cat sees a dog."])                 # -> ["El gato ve a un perro."]
    translator("The cat sees a dog.", num_beams=1)      # a str in, a str out

Decoding defaults come from the checkpoint's `generation_config.json` (the recipe saves the beam size,
length penalty and max length of its final evaluation there); every call may override them.
"""

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from .training.generation import translate_texts


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Translator:
    def __init__(self, model, tokenizer, device: str | torch.device | None = None):
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, name_or_path, device=None, dtype=None, trust_remote_code: bool = False,
                        load_legacy_bin: bool = False) -> "Translator":
        """Load model and tokenizer from a local folder or Hub id (ours without remote code once
        `bigmodel_hf` is imported; other checkpoints as `AutoModelForSeq2SeqLM` loads them).

        Weights come from safetensors only; `load_legacy_bin=True` also accepts a pickled `pytorch_model.bin`.
        """
        model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, dtype=dtype, trust_remote_code=trust_remote_code,
                                                      use_safetensors=None if load_legacy_bin else True)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, device)

    def __call__(
        self,
        texts: str | list[str],
        num_beams: int | None = None,
        length_penalty: float | None = None,
        max_new_tokens: int | None = None,
        batch_size: int = 32,
    ) -> str | list[str]:
        single = isinstance(texts, str)
        defaults = self.model.generation_config
        outputs = translate_texts(
            self.model, self.tokenizer, [texts] if single else list(texts),
            num_beams=num_beams or defaults.num_beams or 1,
            length_penalty=length_penalty if length_penalty is not None else (defaults.length_penalty or 1.0),
            max_new_tokens=max_new_tokens or max((defaults.max_length or 129) - 1, 1),  # max_length counts the start token
            batch_size=batch_size,
        )
        return outputs[0] if single else outputs
