"""The interactive engine on a CTranslate2 export (`interactive/ct2_engine.py`) keeps the promises of the
PyTorch engine: the tests of test_interactive.py that speak only of completions run here again on it
(imported below, with this module's `engine` fixture), plus the ones that need the torch model rewritten
to compare with it. The engine's "encoder runs once per source" does not apply: CTranslate2 has no way
to reuse encoder states between calls, so it re-encodes (the cheap part) and caches only the tokens.
"""

import importlib.util

import pytest
import torch
from interactive_models import PAIRS, make_model_dir

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.interactive.constraint import plan_prefix

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None,
                                reason="ctranslate2 is not installed (pip install 'bigmodel-hf[ct2]' or '.[dev]')")

from test_interactive import (  # noqa: E402,F401  (collected here again, with the CTranslate2 engine)
    SOURCES, assert_honours, test_a_half_word_is_spelled_not_forced, test_every_completion_starts_with_the_prefix,
    test_n_best_are_distinct_and_best_first, test_session_accept_type_choose_approve,
    test_simulated_typist_with_a_real_engine, test_simulation_with_a_real_engine_ends_on_the_reference,
    test_the_run_on_cap_leaves_room_after_a_long_prefix, test_word_probability_covers_every_token_that_spells_it,
    test_words_typed_in_full_have_no_probability)


def ct2_engine(folder, **options):
    from bigmodel_hf.export.ct2 import export_ct2
    from bigmodel_hf.interactive.ct2_engine import CT2CompletionEngine

    export_ct2(folder, folder / "ct2", quantization="float32")
    return CT2CompletionEngine.from_pretrained(folder, **options)


@pytest.fixture(scope="module", params=["bpe", "byte-level"])
def engine(request, tmp_path_factory):
    return ct2_engine(make_model_dir(tmp_path_factory.mktemp(request.param), request.param))


def test_token_probabilities_are_the_torch_models(engine):
    """float32 CTranslate2 probabilities equal a scoring forward pass of the PyTorch model."""
    model = BigModelForSeq2SeqLM.from_pretrained(engine.ct2.folder.parent).eval()
    start = model.config.decoder_start_token_id
    for source in SOURCES:
        for prefix in ("", "La mu", "La mujer "):
            plan = plan_prefix(engine.tokenizer, engine.surfaces, prefix)
            for alternative in engine.complete(source, prefix).alternatives:
                probabilities = torch.tensor(alternative.token_probabilities, dtype=torch.float32)
                ids = torch.tensor([[start, *plan.forced_ids, *alternative.token_ids]])
                with torch.no_grad():
                    logits = model(**engine.tokenizer([source], return_tensors="pt"), decoder_input_ids=ids[:, :-1]).logits[0]
                scored = logits.log_softmax(-1)[-len(alternative.token_ids):].gather(
                    -1, torch.tensor(alternative.token_ids)[:, None])[:, 0].exp()
                torch.testing.assert_close(probabilities, scored, atol=1e-4, rtol=1e-4)


def test_an_empty_prefix_gives_ctranslate2_beam_search(engine):
    """No prefix: one plain beam search; the best of its hypotheses by the model's length-normalised
    log-probability is the proposal."""
    for source in SOURCES:
        completion = engine.complete(source, "")
        tokens, length = engine.encode(source)
        results = engine.ct2.translator.translate_batch(
            [tokens], beam_size=engine.num_beams, num_hypotheses=engine.num_beams,
            length_penalty=engine.length_penalty, max_decoding_length=engine.new_token_budget(length, 0))
        texts = [engine.ct2.decode(hypothesis) for hypothesis in results[0].hypotheses]
        assert completion.text in texts
        assert max(a.score for a in completion.alternatives) == completion.score


def test_the_spelling_path_runs_when_the_free_search_leaves_the_prefix(engine, monkeypatch):
    """A half word is spelled before the search; whole words go straight to the search, and only when it
    fails to spell the word boundary are they spelled too."""
    calls = []
    original = engine._spell
    monkeypatch.setattr(engine, "_spell", lambda *a: calls.append(a[-1]) or original(*a))
    engine.complete(SOURCES[0], "La mu")
    assert calls == [b" mu"]
    searches, free = [], engine._free
    # the first (free) search returns a hypothesis that continues the last word instead of starting one
    monkeypatch.setattr(engine, "_free", lambda sources, prefixes, *a: searches.append(prefixes) or (
        [prefixes[0] + ["ujer"]] if len(searches) == 1 else free(sources, prefixes, *a)))
    completion = engine.complete(SOURCES[0], "La ")
    assert calls[-1] == b" " and len(searches) == 2
    for alternative in completion.alternatives:
        assert_honours(alternative.text, "La ")


def test_odd_tokenizers_still_keep_the_prefix(tmp_path):
    """A lowercasing normaliser and a vocabulary padded past the tokenizer's, as in test_interactive.py."""
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    from tiny_models import tiny_config

    make_model_dir(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    tokenizer.backend_tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    torch.manual_seed(1)
    model = BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer) + 7)).eval()
    model.generation_config.max_length, model.generation_config.num_beams = 12, 3
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    engine = ct2_engine(tmp_path)
    assert len(engine.surfaces) == len(tokenizer) + 7
    for prefix in ("La Mu", "La mu", "LA ", "Ñ"):
        for alternative in engine.complete(SOURCES[0], prefix).alternatives:
            assert_honours(alternative.text, prefix)
