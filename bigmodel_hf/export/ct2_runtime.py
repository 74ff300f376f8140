"""Run a CTranslate2 export (see `ct2.py`): the tokenizer and decoding defaults saved beside it, texts in,
texts out. `Translator(engine="ct2")` and the interactive engine's CTranslate2 path decode through it.
"""

import json
from pathlib import Path
from types import SimpleNamespace

from ..decoding import DecodingSettings
from .ct2 import DECODING_FILE, find_ct2_export, require_ctranslate2


class CT2Model:
    def __init__(self, folder, device: str = "cpu", intra_threads: int = 0, compute_type: str = "default"):
        """`folder`: a CTranslate2 export, or a model folder with one in `ct2/`. `intra_threads=0` lets
        CTranslate2 choose; `compute_type="default"` runs the weights in the type they were exported in."""
        ctranslate2 = require_ctranslate2()
        from transformers import AutoTokenizer

        found = find_ct2_export(folder)
        if found is None:
            raise ValueError(f"{folder} holds no CTranslate2 export (model.bin + {DECODING_FILE}, there or in ct2/); "
                             f"make one with `bigmodel-hf export ct2 {folder} {Path(folder) / 'ct2'}`.")
        self.folder = found
        self.translator = ctranslate2.Translator(str(found), device=device, intra_threads=intra_threads,
                                                 compute_type=compute_type)
        self.tokenizer = AutoTokenizer.from_pretrained(found, trust_remote_code=False)  # tokenizer.json only
        self.defaults = json.loads((found / DECODING_FILE).read_text("utf-8"))
        self.source_prefix = self.defaults.get("source_prefix") or ""
        # a multilingual export's languages, read as `directions.ModelLanguages.of` reads a model config
        self.language_config = SimpleNamespace(lang_to_id=self.defaults.get("lang_to_id"),
                                               language_pairs=self.defaults.get("language_pairs"))
        # the model's vocabulary, which may run past the tokenizer's (a padded embedding matrix)
        self.vocab_size = len(json.loads((found / "shared_vocabulary.json").read_text("utf-8")))

    def settings(self, num_beams: int | None = None, length_penalty: float | None = None,
                 max_new_tokens: int | None = None) -> DecodingSettings:
        """The settings of one call: each one given, else the export's saved default (`decoding.json`)."""
        return DecodingSettings(
            num_beams=num_beams or self.defaults["beam_size"],
            length_penalty=length_penalty if length_penalty is not None else self.defaults["length_penalty"],
            max_new_tokens=max_new_tokens or self.defaults["max_decoding_length"])

    @property
    def max_positions(self) -> int:
        """Positions the export's table covers (0: no table, rotary positions)."""
        return int(self.defaults.get("max_positions", 0))

    def clip_length(self, length: int) -> int:
        """A decoding length the position table covers (the start token takes a position too)."""
        return min(length, self.max_positions - 1) if self.max_positions else length

    def source_tokens(self, text: str) -> list[str]:
        """Token strings of a source as the export expects them (BOS/EOS are added by CTranslate2's config)."""
        ids = self.tokenizer(self.source_prefix + text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.convert_ids_to_tokens(ids)

    def target_tokens(self, text: str) -> list[str]:
        ids = self.tokenizer(text_target=text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.convert_ids_to_tokens(ids)

    def decode(self, tokens: list[str]) -> str:
        return self.tokenizer.decode(self.tokenizer.convert_tokens_to_ids(tokens), skip_special_tokens=True).strip()

    def translate(self, texts: list[str], num_beams: int, length_penalty: float, max_new_tokens: int,
                  batch_size: int = 32, forced_bos_token_id: int | None = None) -> list[str]:
        """One translation per text, in order (CTranslate2 sorts by length within `batch_size` itself).
        `forced_bos_token_id`: a multilingual model's target-language token, the first of every output."""
        lead = [] if forced_bos_token_id is None else [self.tokenizer.convert_ids_to_tokens(forced_bos_token_id)]
        results = self.translator.translate_batch(
            [self.source_tokens(text) for text in texts], max_batch_size=batch_size, beam_size=num_beams,
            target_prefix=[lead] * len(texts) if lead else None, length_penalty=length_penalty,
            max_decoding_length=self.clip_length(max_new_tokens + len(lead)), max_input_length=self.max_positions)
        return [self.decode(result.hypotheses[0]) for result in results]
