"""The completion engine: a source sentence and a target prefix in, the best completions out.

    engine = CompletionEngine.from_pretrained("outputs/translate_toy_en_es")
    completion = engine.complete("The cat sees a dog.", "El gato v")
    completion.text            # "El gato ve a un perro."  (always starts with the prefix as typed)
    completion.words           # [Word("El", None), Word("gato", None), Word("ve", 0.93), ...]
    completion.alternatives    # the n-best, best first, each a Completion of the same prefix

Beam search runs constrained to the prefix, then free (see `constraint.py`). The encoder runs once per
source sentence and its output is reused for every prefix the person tries on it, so each keystroke costs
only decoder steps. Word probabilities are the model's own (unconstrained) probabilities of the tokens it
chose, multiplied over the tokens of the word: the quantity an interface highlights when it is low.

A multilingual model (`lang_to_id` in its config) completes in the language asked for (`target_lang`, at
construction or per call): its token goes first in the decoder prefix, before the typed words, and the
encoder outputs are kept per direction. With a pivot (`pivot="en"` and a direction the model was not trained
on, see `directions.py`) the source is first translated into the pivot language, and the person completes
the translation of that.
"""

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, LogitsProcessorList
from transformers.modeling_outputs import BaseModelOutput

from ..decoding import decoding_settings, translate_texts
from ..devices import parse_device
from ..directions import Leg, ModelLanguages, Route
from ..pretrained import check_model_location, one_line_load_errors, source_prefix_of
from .constraint import SpellingIndex, SpellPrefix, plan_prefix
from .surfaces import token_surfaces


@dataclass(frozen=True)
class Word:
    text: str
    probability: float | None  # None: every character of it came from the prefix, the model chose nothing


@dataclass(frozen=True)
class Completion:
    prefix: str                     # the prefix it honours, normalised (see constraint.normalize_prefix)
    text: str                       # prefix + the model's continuation, words separated by single spaces
    words: list[Word]
    token_ids: list[int]            # the generated tokens (after the start token and the forced ones), EOS included
    token_probabilities: list[float]  # the model's probability of each of them
    score: float                    # beam score (length-normalised log-probability)
    alternatives: list["Completion"] = field(default_factory=list)  # n-best incl. this one; empty on those


class CompletionEngine:
    def __init__(self, model, tokenizer, num_beams: int | None = None, num_alternatives: int = 3,
                 max_new_tokens: int | None = None, length_penalty: float | None = None,
                 max_length_ratio: float | None = 1.5,
                 source_prefix: str | None = None, cache_size: int = 16, languages: ModelLanguages | None = None,
                 source_lang: str | None = None, target_lang: str | None = None, pivot: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        settings = decoding_settings(model.generation_config, num_beams, length_penalty, max_new_tokens)
        self.num_beams = max(settings.num_beams, num_alternatives)
        self.num_alternatives = num_alternatives
        self.max_new_tokens = settings.max_new_tokens
        # a translation longer than 1.5x its source's tokens + 10 is a run-on, not a proposal (no pair of
        # bible_en_es validation comes within 4 tokens of it); cutting it keeps each keystroke cheap
        self.max_length_ratio = max_length_ratio
        self.length_penalty = settings.length_penalty
        self.source_prefix = source_prefix or ""
        self.surfaces = token_surfaces(tokenizer)
        # embedding rows past the tokenizer (a padded vocabulary) are never text
        self.surfaces += [b""] * max(0, model.config.vocab_size - len(self.surfaces))
        self.spelling = SpellingIndex(self.surfaces, tokenizer.eos_token_id)
        self.start_id = model.config.decoder_start_token_id
        if self.start_id is None:
            self.start_id = tokenizer.bos_token_id
        self._encoded: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_size = cache_size
        self._set_direction(languages or ModelLanguages.of(model.config, model.generation_config),
                            source_lang, target_lang, pivot)
        # held for a whole completion: new weights (online adaptation) land between two completions, never in one
        self._weights_lock = threading.RLock()
        self.weights_version = 0

    @classmethod
    def from_pretrained(cls, name_or_path, device: str | torch.device | None = None, trust_remote_code: bool = False,
                        **options) -> "CompletionEngine":
        """Model and tokenizer of a run's output directory (safetensors only) or a Hub id; code shipped with
        the model runs only with `trust_remote_code=True`. `device`: where Accelerate would train when None
        (`devices.default_device`).

        The `source_prefix` the run trained with (see `pretrained.source_prefix_of`) is applied to sources
        here too, as `Translator` does.
        """
        check_model_location(name_or_path)
        with one_line_load_errors(name_or_path):
            model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, use_safetensors=True,
                                                          trust_remote_code=bool(trust_remote_code)).to(parse_device(device))
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=bool(trust_remote_code))
        options.setdefault("source_prefix", source_prefix_of(model.config, name_or_path))
        options.setdefault("languages", ModelLanguages.of(model.config, model.generation_config, name_or_path))
        return cls(model, tokenizer, **options)

    def _set_direction(self, languages: ModelLanguages, source_lang, target_lang, pivot) -> None:
        """The default direction (checked now: a language the model does not write fails at start-up)."""
        self.languages, self.source_lang, self.pivot = languages, source_lang, pivot
        self.target_lang = target_lang or languages.default_target()
        self.route(None)

    def route(self, target_lang: str | None = None) -> Route:
        """The route of a completion into `target_lang` (the engine's own when None); ValueError (one line)
        for a language the model does not write."""
        return self.languages.route(self.source_lang, target_lang or self.target_lang, self.pivot)

    @staticmethod
    def _lead_ids(leg: Leg) -> list[int]:
        """Decoder tokens before the typed words: the target-language token of a multilingual model."""
        return [] if leg.forced_bos_token_id is None else [leg.forced_bos_token_id]

    # ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, source: str, target_lang: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states and attention mask of `source` in the direction of `target_lang`, computed once and
        kept for the next prefixes."""
        with self._weights_lock:
            return self._encode(source, self.route(target_lang))

    def _encode(self, source: str, route: Route) -> tuple[torch.Tensor, torch.Tensor]:
        # kept per direction: a pivot route encodes another text, and no direction reuses another's states
        key = (route.legs, source)
        if key in self._encoded:
            self._encoded.move_to_end(key)
            return self._encoded[key]
        text = self.source_prefix + source
        if route.pivot is not None:  # the model completes the translation of the pivot text
            text = translate_texts(self.model, self.tokenizer, [text], num_beams=self.num_beams,
                                   length_penalty=self.length_penalty, max_new_tokens=self.max_new_tokens + 1,
                                   forced_bos_token_id=route.legs[0].forced_bos_token_id)[0]
        batch = self.tokenizer([text], return_tensors="pt").to(self.model.device)
        states = self.model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        self._encoded[key] = (states.last_hidden_state, batch["attention_mask"])
        if len(self._encoded) > self._cache_size:
            self._encoded.popitem(last=False)
        return self._encoded[key]

    def new_token_budget(self, source_tokens: int, forced_tokens: int) -> int:
        """Tokens the model may add after the prefix: `max_new_tokens`, or less under `max_length_ratio`
        (never under 8, so a person who typed past the cap still gets the sentence finished)."""
        if self.max_length_ratio is None:
            return self.max_new_tokens
        cap = math.ceil(self.max_length_ratio * source_tokens) + 10 - forced_tokens
        return max(1, min(self.max_new_tokens, max(8, cap)))

    def clear_cache(self) -> None:
        """Forget the encoded sources (a benchmark that wants each sentence to pay for its encoder)."""
        with self._weights_lock:
            self._encoded.clear()

    @torch.no_grad()
    def replace_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy new values in (parameter name -> tensor) between two completions and forget every encoder
        output computed with the old ones, so that no proposal mixes old and new weights."""
        parameters = dict(self.model.named_parameters())
        with self._weights_lock:
            for name, value in tensors.items():
                parameters[name].copy_(value)
            self._encoded.clear()
            self.weights_version += 1

    def complete(self, source: str, prefix: str = "", num_alternatives: int | None = None,
                 target_lang: str | None = None) -> Completion:
        """The best completion of `prefix` as a translation of `source` into `target_lang` (the engine's own
        when None), with its n-best alternatives."""
        with self._weights_lock:
            return self._complete(source, prefix, num_alternatives, self.route(target_lang))

    @torch.no_grad()
    def _complete(self, source: str, prefix: str, num_alternatives: int | None, route: Route) -> Completion:
        wanted = self.num_alternatives if num_alternatives is None else num_alternatives
        plan = plan_prefix(self.tokenizer, self.surfaces, prefix)
        states, mask = self._encode(source, route)
        lead = self._lead_ids(route.legs[-1])
        # [start, language token (multilingual), typed whole words]: the language comes first, as in training
        start = torch.tensor([[self.start_id, *lead, *plan.forced_ids]], device=self.model.device)
        processors = LogitsProcessorList([SpellPrefix(self.spelling, plan.required, start.shape[1])]
                                         if plan.required else [])
        out = self.model.generate(
            # a fresh wrapper each call: generate expands encoder outputs for the beams in place
            encoder_outputs=BaseModelOutput(last_hidden_state=states), attention_mask=mask,
            decoder_input_ids=start, logits_processor=processors,
            num_beams=self.num_beams, num_return_sequences=max(1, min(wanted, self.num_beams)),
            length_penalty=self.length_penalty,
            max_length=start.shape[1] + self.new_token_budget(mask.shape[1], len(plan.forced_ids)),
            do_sample=False, output_logits=True, return_dict_in_generate=True,
        )
        log_probs = self.model.compute_transition_scores(
            out.sequences, out.logits, getattr(out, "beam_indices", None), normalize_logits=True)
        scores = out.sequences_scores.tolist() if getattr(out, "sequences_scores", None) is not None \
            else log_probs.sum(-1).tolist()
        completions, seen = [], set()
        for row in range(out.sequences.shape[0]):
            generated = out.sequences[row, start.shape[1]:].tolist()
            completion = self._describe(plan, generated, log_probs[row].exp().tolist(), scores[row])
            if completion.text not in seen:  # two segmentations of one text are one alternative
                seen.add(completion.text)
                completions.append(completion)
        best = completions[0]
        return Completion(best.prefix, best.text, best.words, best.token_ids, best.token_probabilities, best.score,
                          completions if wanted > 0 else [])

    def _describe(self, plan, generated: list[int], probabilities: list[float], score: float) -> Completion:
        """Text, words and per-word probabilities of one generated continuation."""
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        kept = []
        for token, probability in zip(generated, probabilities):
            if token == pad:  # a shorter hypothesis padded to the longest
                break
            kept.append((token, probability))
            if token == eos:
                break
        # the generated text starts with the bytes the plan required, which end the prefix text already
        # shown; a SentencePiece-style first word requires one space more than the text has: pad for it
        raw = plan.text.encode("utf-8")
        raw = b" " * max(0, len(plan.required) - len(raw)) + raw
        position = len(raw) - len(plan.required)
        spans = []  # byte span in `raw` of each generated token's surface
        for token, probability in kept:
            surface = self.surfaces[token]
            end = position + len(surface)
            if end > len(raw):
                raw += surface[len(surface) - (end - len(raw)):]  # the part past what the prefix shows
            spans.append((position, end, probability))
            position = end
        words = []
        for match in re.finditer(rb"\S+", raw):
            chosen = [p for begin, end, p in spans if begin < match.end() and end > match.start() and end > begin
                      and raw[max(begin, match.start()):min(end, match.end())].strip()]
            product = None
            for p in chosen:
                product = p if product is None else product * p
            words.append(Word(match.group().decode("utf-8", errors="replace"), product))
        text = " ".join(word.text for word in words)
        return Completion(plan.text, text, words, [t for t, _ in kept], [p for _, p in kept], score)
