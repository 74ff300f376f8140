"""Interactive-predictive translation: prefix-constrained completion, probabilities, n-best, the session,
the terminal loop over stdin and the corrections file the recipe trains on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from interactive_models import PAIRS, make_model_dir, write_pairs

from bigmodel_hf.interactive import CompletionEngine
from bigmodel_hf.interactive.constraint import SpellingIndex, normalize_prefix, plan_prefix
from bigmodel_hf.interactive.session import CorrectionLog, TranslationSession, model_languages, read_sources
from bigmodel_hf.interactive.simulation import simulate_sentence, summarize
from bigmodel_hf.interactive.terminal import run_terminal
from bigmodel_hf.decoding import translate_texts

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [PAIRS[0]["en"], PAIRS[1]["en"], "The old man buys bread in the city."]
PREFIXES = ["", "La", "La ", "La mu", "La mujer ", "La mujer ti", "Los niños  miran", "El niño mira un r", "niñ",
            "Qué x", "zzz ", "El 42 "]


@pytest.fixture(scope="module", params=["bpe", "byte-level"])
def engine(request, tmp_path_factory):
    folder = make_model_dir(tmp_path_factory.mktemp(request.param), request.param)
    return CompletionEngine.from_pretrained(folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("bpe-model"))


def assert_honours(text: str, prefix: str) -> None:
    """`text` shows `prefix` verbatim; a finished last word (trailing space) stays a word of its own."""
    shown = normalize_prefix(prefix)
    assert text.startswith(shown.rstrip()), (text, prefix)
    if shown.endswith(" "):
        assert text == shown.rstrip() or text.startswith(shown), (text, prefix)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_completion_starts_with_the_prefix(engine, prefix):
    for source in SOURCES:
        completion = engine.complete(source, prefix)
        assert completion.prefix == normalize_prefix(prefix)
        for alternative in completion.alternatives:
            assert_honours(alternative.text, prefix)


def test_a_half_word_is_spelled_not_forced(engine):
    """The last typed characters are matched by the surfaces of whatever tokens the model picks, so the
    allowed next tokens include whole words that start with them, not just their own token."""
    tokenizer = engine.tokenizer
    plan = plan_prefix(tokenizer, engine.surfaces, "La mujer ti")
    assert plan.forced_ids == tokenizer(text_target="La mujer", add_special_tokens=False)["input_ids"]
    assert plan.required in (b" ti",)
    allowed = engine.spelling.allowed(plan.required)
    surfaces = [engine.surfaces[i] for i in allowed.nonzero().flatten().tolist()]
    assert surfaces and all(s.startswith(b" ti") or b" ti".startswith(s) for s in surfaces)
    assert any(s.startswith(b" tien") for s in surfaces)  # the vocabulary's "tiene" piece is allowed
    assert tokenizer.eos_token_id not in allowed.nonzero().flatten().tolist()
    # after a finished word only the word boundary is required; ending there is allowed
    boundary = plan_prefix(tokenizer, engine.surfaces, "La mujer ")
    assert boundary.required in (b" ",) and engine.spelling.allowed(b" ")[tokenizer.eos_token_id]


def test_spelling_index_on_made_up_surfaces():
    index = SpellingIndex([b"", b"", b"", b" ve", b" v", b"e", b" vez", b" gato", b" "], eos_token_id=2)
    assert index.allowed(b" ve").nonzero().flatten().tolist() == [3, 4, 6, 8]
    assert index.allowed(b"e").nonzero().flatten().tolist() == [5]
    assert index.allowed(b" ").nonzero().flatten().tolist() == [2, 3, 4, 6, 7, 8]


def test_an_empty_prefix_gives_plain_beam_search(engine, monkeypatch):
    expected = translate_texts(engine.model, engine.tokenizer, SOURCES, num_beams=engine.num_beams,
                               max_new_tokens=engine.max_new_tokens)
    monkeypatch.setattr(engine, "max_length_ratio", None)
    assert [engine.complete(source, "").text for source in SOURCES] == expected
    monkeypatch.setattr(engine, "max_length_ratio", 0.1)  # the run-on cap: plain beam search of that length
    for source in SOURCES:
        budget = engine.new_token_budget(len(engine.tokenizer(source)["input_ids"]), 0)
        assert budget < engine.max_new_tokens
        assert engine.complete(source, "").text == translate_texts(
            engine.model, engine.tokenizer, [source], num_beams=engine.num_beams, max_new_tokens=budget)[0]


def test_the_run_on_cap_leaves_room_after_a_long_prefix(engine):
    assert engine.new_token_budget(10, 0) == min(engine.max_new_tokens, 25)
    assert engine.new_token_budget(10, 24) == 8


def test_token_probabilities_match_a_scoring_forward_pass(engine):
    for source in SOURCES:
        for prefix in ("", "La mu", "La mujer "):
            completion = engine.complete(source, prefix)
            plan = plan_prefix(engine.tokenizer, engine.surfaces, prefix)
            for alternative in completion.alternatives:
                probabilities = torch.tensor(alternative.token_probabilities)
                assert ((probabilities > 0) & (probabilities <= 1)).all()
                ids = torch.tensor([[engine.start_id, *plan.forced_ids, *alternative.token_ids]])
                batch = engine.tokenizer([source], return_tensors="pt")
                with torch.no_grad():
                    logits = engine.model(**batch, decoder_input_ids=ids[:, :-1]).logits[0]
                scored = logits.log_softmax(-1)[-len(alternative.token_ids):].gather(
                    -1, torch.tensor(alternative.token_ids)[:, None])[:, 0].exp()
                torch.testing.assert_close(probabilities, scored, atol=1e-4, rtol=1e-4)
                for word in alternative.words:
                    assert word.probability is None or 0 < word.probability <= 1


def test_words_typed_in_full_have_no_probability(engine):
    completion = engine.complete(SOURCES[0], "La mujer ti")
    assert [w.probability for w in completion.words[:2]] == [None, None]
    assert completion.words[2].text.startswith("ti") and completion.words[2].probability is not None


def test_n_best_are_distinct_and_best_first(engine):
    for source in SOURCES:
        for prefix in ("", "La "):
            alternatives = engine.complete(source, prefix, num_alternatives=3).alternatives
            texts = [a.text for a in alternatives]
            scores = [a.score for a in alternatives]
            assert 1 <= len(texts) <= 3 and len(set(texts)) == len(texts)
            assert scores == sorted(scores, reverse=True)
            assert alternatives[0].text == engine.complete(source, prefix).text


def test_the_encoder_runs_once_per_source(engine, monkeypatch):
    calls = []
    encoder = engine.model.get_encoder()
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    engine.clear_cache()
    for prefix in ("", "La", "La mu", "La mujer "):
        engine.complete(SOURCES[0], prefix)
    assert len(calls) == 1


def test_session_accept_type_choose_approve(engine):
    session = TranslationSession(engine, SOURCES[0])
    first = session.proposal.text.split()
    session.accept(2)
    assert session.accepted == first[:2] and session.completions == 1  # no new completion needed
    session.type("mir")
    assert session.prefix == " ".join(first[:2]) + " mir"
    assert session.proposal.text.startswith(" ".join(first[:2]) + " mir")
    session.type("miran ")  # the person typed on: the same correction, longer
    assert session.proposal.text.split()[:3] == first[:2] + ["miran"] and session.completions == 3
    session.choose(len(session.proposal.alternatives) - 1)
    assert session.proposal.text.split()[:3] == first[:2] + ["miran"]
    with pytest.raises(ValueError, match="cannot accept"):
        session.accept(99)
    session.accept(3)
    assert session.approve_prefix() == " ".join(first[:2] + ["miran"])
    assert TranslationSession(engine, SOURCES[0]).approve("  Hola   mundo ") == "Hola mundo"


class ScriptedEngine:
    """Proposes `proposals[prefix]` (default: the prefix alone), to test the simulation exactly."""

    def __init__(self, proposals):
        self.proposals, self.prefixes = proposals, []

    def complete(self, source, prefix="", num_alternatives=None):
        self.prefixes.append(prefix)
        from bigmodel_hf.interactive import Completion
        text = self.proposals.get(prefix, prefix)
        return Completion(prefix, " ".join(text.split()), [], [], [], 0.0)


def test_simulated_translator_accepts_the_longest_right_prefix_and_types_one_word():
    reference = "el gato ve un perro"
    right = simulate_sentence(ScriptedEngine({"": "el gato ve un perro grande"}), "src", reference)
    assert (right.words_typed, right.completions, right.cut_overrun) == (0, 1, True)
    engine = ScriptedEngine({"": "el perro ve un gato", "el gato ": "el gato ve un gato",
                             "el gato ve un perro ": "el gato ve un perro"})
    steered = simulate_sentence(engine, "src", reference)
    assert engine.prefixes == ["", "el gato ", "el gato ve un perro "]
    assert (steered.words_typed, steered.completions) == (2, 3)
    useless = simulate_sentence(ScriptedEngine({}), "src", reference)  # a model that never proposes anything
    assert useless.words_typed == 5 and useless.completions == 6
    summary = summarize([right, steered, useless])
    assert summary["word_stroke_ratio"] == pytest.approx(7 / 15)
    assert summary["char_ratio"] == pytest.approx((len("gato perro ") + len(reference) + 1) / (3 * len(reference)))
    assert summary["first_proposal_right"] == 1 and summary["cut_overruns"] == 1


def test_simulation_with_a_real_engine_ends_on_the_reference(engine):
    for row in PAIRS[:3]:
        result = simulate_sentence(engine, row["en"], row["es"])
        assert result.words_typed <= result.reference_words
        assert result.completions == result.words_typed + 1


def test_terminal_commands(engine, tmp_path):
    log = CorrectionLog(tmp_path / "corrections.jsonl", "en", "es")
    proposal = engine.complete(SOURCES[0], "").text.split()
    commands = iter(["/help", "2", "mir*", "#9", "3", "/end",    # sentence 1: accept, correct, cut
                     "/skip",                                    # sentence 2: skipped
                     " 42", ""])                                 # sentence 3: a number typed as a word
    output = []

    def answer(prompt):
        output.append(prompt)
        return next(commands)

    class Out:
        def write(self, text):
            output.append(text)

        def flush(self):
            pass

    assert run_terminal(engine, log, SOURCES, input_fn=answer, out=Out()) == 2
    rows = [json.loads(line) for line in log.path.read_text("utf-8").splitlines()]
    first = rows[0]["translation"]["es"].split()
    assert first[:2] == proposal[:2] and first[2].startswith("mir") and len(first) == 3
    assert [row["translation"]["en"] for row in rows] == [SOURCES[0], SOURCES[2]]
    assert rows[1]["translation"]["es"].startswith("42")
    assert "there are" in "".join(output)  # "#9": an alternative that does not exist, said, not crashed


def test_terminal_over_stdin_writes_corrections_the_recipe_reads(model_dir, tmp_path):
    from bigmodel_hf.training.arguments import TranslationDataArguments
    from bigmodel_hf.training.translation import load_parallel_data

    sources = tmp_path / "sources.txt"
    sources.write_text(SOURCES[0] + "\n" + SOURCES[1] + "\n", "utf-8")
    corrections = tmp_path / "corrections.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "bigmodel_hf.cli", "translate", "--interactive", "--model", str(model_dir),
         "--source_file", str(sources), "--corrections", str(corrections), "--device", "cpu"],
        input=f"Una niña dibuja\n\n{PAIRS[1]['es']}\n/end\n", capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "2 translation(s) saved" in run.stdout
    rows = [json.loads(line) for line in corrections.read_text("utf-8").splitlines()]
    assert rows[0] == {"translation": {"en": SOURCES[0], "es": rows[0]["translation"]["es"]}}
    assert rows[0]["translation"]["es"].startswith("Una niña dibuja")
    assert rows[1]["translation"]["es"] == PAIRS[1]["es"]
    held_out = tmp_path / "held_out.jsonl"
    write_pairs(held_out, PAIRS[50:55])
    data = TranslationDataArguments(train_file=str(corrections), validation_file=str(held_out), clean_data=False)
    raw = load_parallel_data(data, str(tmp_path / "run"), seed=0)
    assert raw["train"]["source"] == SOURCES[:2]
    assert raw["train"]["target"] == [row["translation"]["es"] for row in rows]
    data.clean_data = True  # the recipe's default; the random model's run-on proposal may be cleaned away
    cleaned = load_parallel_data(data, str(tmp_path / "run"), seed=0)["train"]
    assert {"source": SOURCES[1], "target": PAIRS[1]["es"]} in cleaned


@pytest.mark.slow
def test_the_recipe_fine_tunes_the_model_on_its_corrections(model_dir, tmp_path):
    from bigmodel_hf.training.translation import parse_translation_config, run_translation

    corrections, held_out = tmp_path / "corrections.jsonl", tmp_path / "held_out.jsonl"
    write_pairs(corrections, PAIRS[:8])
    write_pairs(held_out, PAIRS[50:53])
    output_dir = tmp_path / "run"
    run_translation(parse_translation_config([
        "--model_name_or_path", str(model_dir), "--train_file", str(corrections), "--validation_file", str(held_out),
        "--output_dir", str(output_dir), "--max_steps", "2", "--per_device_train_batch_size", "4",
        "--report_to", "none", "--num_sample_outputs", "0", "--generation_max_length", "8", "--num_beams", "1",
        "--save_steps", "2", "--eval_steps", "2"]))
    assert (output_dir / "model.safetensors").is_file()
    assert CompletionEngine.from_pretrained(output_dir).complete(SOURCES[0], "La ").text.startswith("La ")


def test_languages_and_sources(model_dir, tmp_path):
    assert model_languages(model_dir) == ("en", "es")
    assert model_languages(model_dir, "de", "fr") == ("de", "fr")
    with pytest.raises(ValueError, match="--source_lang and --target_lang"):
        model_languages(tmp_path)
    jsonl = tmp_path / "pairs.jsonl"
    write_pairs(jsonl, PAIRS[:2])
    assert read_sources(jsonl, "en") == [PAIRS[0]["en"], PAIRS[1]["en"]]
    with pytest.raises(ValueError, match="both 'en'"):
        CorrectionLog(tmp_path / "x.jsonl", "en", "en")


def test_odd_tokenizers_still_keep_the_prefix(tmp_path):
    """A lowercasing normaliser (typed capitals cannot be spelled: the prefix is forced as tokens instead)
    and a model whose vocabulary is padded past the tokenizer's."""
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    from bigmodel_hf import BigModelForSeq2SeqLM
    from tiny_models import tiny_config

    make_model_dir(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    tokenizer.backend_tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    torch.manual_seed(1)
    model = BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer) + 7)).eval()
    model.generation_config.max_length = 12
    engine = CompletionEngine(model, tokenizer, num_beams=3)
    assert len(engine.surfaces) == len(tokenizer) + 7
    for prefix in ("La Mu", "La mu", "LA ", "Ñ"):
        completion = engine.complete(SOURCES[0], prefix)
        for alternative in completion.alternatives:
            assert_honours(alternative.text, prefix)


def test_word_probability_covers_every_token_that_spells_it(engine):
    """A half word may be spelled by several tokens; the word's probability is the product of all of
    the generated tokens that touch it, and each token counts for exactly one word."""
    for prefix in ("La mujer ti", "niñ", "El niño mira un r"):
        completion = engine.complete(SOURCES[0], prefix)
        chosen = [w.probability for w in completion.words if w.probability is not None]
        product_words = torch.tensor(chosen).prod().item()
        product_tokens = torch.tensor(completion.token_probabilities).prod().item()
        eos = completion.token_ids[-1] == engine.tokenizer.eos_token_id
        last = completion.token_probabilities[-1] if eos else 1.0  # EOS belongs to no word
        assert product_words == pytest.approx(product_tokens / last, rel=1e-4)


def test_simulated_typist_stops_typing_a_word_once_the_model_has_it():
    from bigmodel_hf.interactive.simulation import simulate_keystrokes

    reference = "el gato ve un perro"
    # the model needs "g" to find "gato", and the whole of "un" plus a space before it finds "perro"
    engine = ScriptedEngine({"": "el perro ve un gato", "el g": "el gato ve una casa", "el gato ve u": "el gato ve una",
                             "el gato ve un": "el gato ve una", "el gato ve un ": "el gato ve un perro"})
    result = simulate_keystrokes(engine, "src", reference)
    assert engine.prefixes == ["", "el g", "el gato ve u", "el gato ve un", "el gato ve un "]
    assert (result.chars_typed, result.words_typed, result.completions) == (4, 2, 5)
    useless = simulate_keystrokes(ScriptedEngine({}), "src", "ab c")
    # a model that only echoes the prefix: every letter typed; each word, once whole, is accepted by a click
    assert (useless.chars_typed, useless.words_typed) == (3, 2)


def test_simulated_typist_with_a_real_engine(engine):
    from bigmodel_hf.interactive.simulation import simulate_keystrokes

    for row in PAIRS[:2]:
        result = simulate_keystrokes(engine, row["en"], row["es"])
        assert result.chars_typed <= result.reference_chars + 1
