"""The completion engine on a CTranslate2 export (`bigmodel-hf export ct2`): the same promises as
`CompletionEngine` (every completion shows the prefix as typed, a half-typed word is spelled by whatever
tokens the model prefers, unconstrained per-token probabilities, distinct n-best, best first), decoded by
CTranslate2 instead of `generate()`.

CTranslate2 takes whole tokens as `target_prefix` but has no hook to mask tokens during search, so the
part of the prefix a token must *spell* (`plan.required`: a half-typed word, or just the word boundary
after a finished word) is decoded here, a step at a time: the next-token log-probabilities at each
candidate (`return_logits_vocab`), the spelling mask of `SpellingIndex` applied, the best `num_beams`
spellings kept. The most probable spelling then joins the `target_prefix` and CTranslate2's beam search
finishes the sentence. After a finished word the spelling step is tried last: the free beam search after
the whole words nearly always starts a new word by itself, and then that single call is the answer.

The n-best are CTranslate2's, in its order, with its length-normalised scores; the probabilities of the
tokens of those returned come from one `score_batch` pass, so they are the model's own (unconstrained),
as the PyTorch engine reports them.
"""

import math
import threading

import numpy as np

from ..directions import ModelLanguages
from ..export.ct2_runtime import CT2Model
from .constraint import SpellingIndex, plan_prefix
from .engine import Completion, CompletionEngine
from .surfaces import token_surfaces


class CT2CompletionEngine(CompletionEngine):
    def __init__(self, ct2_model: CT2Model, num_beams: int | None = None, num_alternatives: int = 3,
                 max_new_tokens: int | None = None, length_penalty: float | None = None,
                 max_length_ratio: float | None = 1.5, source_prefix: str | None = None, cache_size: int = 16,
                 languages: ModelLanguages | None = None, source_lang: str | None = None,
                 target_lang: str | None = None, pivot: str | None = None):
        # no super().__init__: there is no torch model; the attributes the shared methods read are set here
        self.ct2 = ct2_model
        self.model = None
        self.tokenizer = tokenizer = ct2_model.tokenizer
        settings = ct2_model.settings(num_beams, length_penalty, max_new_tokens)
        self.num_beams = max(settings.num_beams, num_alternatives)
        self.num_alternatives = num_alternatives
        self.max_new_tokens = settings.max_new_tokens
        self.max_length_ratio = max_length_ratio
        self.length_penalty = settings.length_penalty
        self.source_prefix = ct2_model.source_prefix if source_prefix is None else source_prefix
        self.surfaces = token_surfaces(tokenizer)
        self.surfaces += [b""] * max(0, ct2_model.vocab_size - len(self.surfaces))
        self.spelling = SpellingIndex(self.surfaces, tokenizer.eos_token_id)
        self.tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.tokens += [f"<unused_{i}>" for i in range(len(self.tokens), len(self.surfaces))]
        self._encoded = {}  # source -> (its tokens, its length with BOS/EOS); CTranslate2 re-runs the encoder
        self._cache_size = cache_size
        # read by the shared methods (clear_cache) and the page; a CTranslate2 model's weights never change
        self._weights_lock = threading.RLock()
        self.weights_version = 0
        self._set_direction(languages or ModelLanguages.of(ct2_model.language_config), source_lang, target_lang, pivot)

    @classmethod
    def from_pretrained(cls, name_or_path, device: str = "cpu", intra_threads: int = 0,
                        trust_remote_code: bool = False, **options):
        """An export's folder (or a model folder with one in `ct2/`). No Python code is ever loaded from it:
        `trust_remote_code` is accepted for the same call as `CompletionEngine` and must stay False."""
        if trust_remote_code:
            raise ValueError("a CTranslate2 export runs no Python code of its own; drop --trust_remote_code.")
        ct2_model = CT2Model(name_or_path, device=str(device), intra_threads=intra_threads)
        options.setdefault("languages", ModelLanguages.of(ct2_model.language_config, None, name_or_path))
        return cls(ct2_model, **options)

    def encode(self, source: str, target_lang: str | None = None) -> tuple[list[str], int]:
        return self._encode(source, self.route(target_lang))

    def _encode(self, source: str, route) -> tuple[list[str], int]:
        key = (route.legs, source)  # per direction, as in the PyTorch engine
        if key not in self._encoded:
            if len(self._encoded) >= self._cache_size:
                self._encoded.pop(next(iter(self._encoded)))
            if route.pivot is not None:  # the person completes the translation of the pivot text
                source = self.ct2.translate([source], self.num_beams, self.length_penalty, self.max_new_tokens,
                                            forced_bos_token_id=route.legs[0].forced_bos_token_id)[0]
            length = len(self.tokenizer(self.source_prefix + source)["input_ids"])
            self._encoded[key] = (self.ct2.source_tokens(source), length)
        return self._encoded[key]

    # ---------------------------------------------------------------------------------------------

    def complete(self, source: str, prefix: str = "", num_alternatives: int | None = None,
                 target_lang: str | None = None) -> Completion:
        route = self.route(target_lang)
        wanted = self.num_alternatives if num_alternatives is None else num_alternatives
        plan = plan_prefix(self.tokenizer, self.surfaces, prefix)
        source_tokens, source_length = self._encode(source, route)
        # a multilingual model's language token leads the target prefix, before the typed words
        forced = [self.tokens[i] for i in [*self._lead_ids(route.legs[-1]), *plan.forced_ids]]
        # the spelled tokens count against the budget, as generated tokens do in the PyTorch engine
        max_length = self.ct2.clip_length(len(forced) + self.new_token_budget(source_length, len(plan.forced_ids)))
        # every beam's hypothesis comes back and all are ranked by one score, so the best does not depend
        # on how many alternatives were asked for
        returned = self.num_beams

        found = []  # (hypothesis tokens, CTranslate2's length-normalised score), best first
        if not plan.required.strip():  # nothing or a word boundary to spell: the free search usually does
            found = [(h, score) for h, score in self._free([source_tokens], [forced], max_length, returned)
                     if self._spells(h[len(forced):], plan.required)]
        if not found:
            # spell first, then search on from the most probable spelling: one search, as on the path above
            # (searching on from every spelling cost 3x as much for a rarely different proposal)
            spelling = self._spell(source_tokens, forced, plan.required)[0]
            found = self._free([source_tokens], [forced + spelling], max_length, returned)
        # distinct texts in CTranslate2's order; only those returned are scored for their probabilities
        chosen, seen = [], set()
        for hypothesis, score in found:
            generated = self.tokenizer.convert_tokens_to_ids(hypothesis[len(forced):])
            text = self._describe(plan, generated, [1.0] * len(generated), score).text
            if text not in seen:  # two segmentations of one text are one alternative
                seen.add(text)
                chosen.append((hypothesis, score))
            if len(chosen) == max(1, min(wanted, self.num_beams)):
                break
        completions = [self._describe(plan, generated, probabilities, score) for (generated, probabilities), (_, score)
                       in zip(self._probabilities(source_tokens, forced, [h for h, _ in chosen]), chosen)]
        best = completions[0]
        return Completion(best.prefix, best.text, best.words, best.token_ids, best.token_probabilities, best.score,
                          completions if wanted > 0 else [])

    def _spells(self, tokens: list[str], required: bytes) -> bool:
        """Whether generated `tokens` start by spelling `required` (or end, with EOS, where allowed)."""
        spelled = b""
        for token in tokens:
            index = self.tokenizer.convert_tokens_to_ids(token)
            if len(spelled) < len(required) and not self.spelling.allowed(required[len(spelled):])[index]:
                return False
            spelled += self.surfaces[index]
            if len(spelled) >= len(required) or index == self.tokenizer.eos_token_id:
                return True
        return len(spelled) >= len(required)

    def _free(self, sources, prefixes, max_length: int, returned: int) -> list[tuple[list[str], float]]:
        """CTranslate2's beam search after each target prefix: every hypothesis (prefix tokens included)
        with its score, best first."""
        results = self.ct2.translator.translate_batch(
            sources, target_prefix=prefixes, beam_size=self.num_beams, num_hypotheses=returned,
            length_penalty=self.length_penalty, return_end_token=True, return_scores=True,
            max_decoding_length=max_length)
        return [pair for result in results for pair in zip(result.hypotheses, result.scores)]

    def _spell(self, source_tokens: list[str], forced: list[str], required: bytes) -> list[list[str]]:
        """The `num_beams` most probable token sequences that spell `required` after `forced`, best first."""
        beams, finished = [([], 0.0, 0)], []  # (tokens, log-probability, bytes spelled)
        while beams:
            results = self.ct2.translator.translate_batch(
                [source_tokens] * len(beams), target_prefix=[forced + tokens for tokens, _, _ in beams],
                beam_size=1, max_decoding_length=len(forced) + len(beams[0][0]) + 1, return_logits_vocab=True,
                min_decoding_length=0)
            candidates = []
            for (tokens, log_probability, spelled), result in zip(beams, results):
                logits = np.asarray(result.logits[0][len(forced) + len(tokens)], dtype=np.float64)
                log_probs = logits - logits.max() - math.log(np.exp(logits - logits.max()).sum())
                allowed = self.spelling.allowed(required[spelled:]).numpy()[:len(log_probs)]
                for index in np.flatnonzero(allowed)[np.argsort(-log_probs[allowed])][:self.num_beams]:
                    candidates.append((tokens + [self.tokens[index]], log_probability + log_probs[index],
                                       spelled + len(self.surfaces[index]), index == self.tokenizer.eos_token_id))
            candidates.sort(key=lambda c: c[1], reverse=True)
            beams = []
            for tokens, log_probability, spelled, ended in candidates[:self.num_beams]:
                if spelled >= len(required) or ended:
                    finished.append((log_probability, tokens))
                else:
                    beams.append((tokens, log_probability, spelled))
            if len(finished) >= self.num_beams and (not beams or beams[0][1] < min(finished)[0]):
                break  # longer spellings only lose probability: none left can enter the best `num_beams`
        finished.sort(key=lambda f: f[0], reverse=True)
        return [tokens for _, tokens in finished[:self.num_beams]] or [[]]

    def _probabilities(self, source_tokens: list[str], forced: list[str], hypotheses: list[list[str]]):
        """(generated token ids, the model's probability of each) of every hypothesis, from one
        teacher-forced pass: the same unconstrained probabilities the PyTorch engine reports."""
        eos = self.tokenizer.eos_token
        targets = [h[:-1] if h and h[-1] == eos else h for h in hypotheses]
        results = self.ct2.translator.score_batch([source_tokens] * len(targets), targets)
        for hypothesis, target, result in zip(hypotheses, targets, results):
            log_probs = list(result.log_probs)  # one per target token, then the EOS score_batch appends
            ended = len(target) < len(hypothesis)
            kept = log_probs[len(forced):len(target)] + (log_probs[len(target):] if ended else [])
            yield self.tokenizer.convert_tokens_to_ids(hypothesis[len(forced):]), [math.exp(p) for p in kept]
