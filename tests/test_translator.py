"""The translate API and `bigmodel-hf translate`: decoding defaults from the checkpoint, batching, stdin."""

import io
import sys

import pytest
import torch
from tiny_models import tiny_config

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.cli import main as cli_main
from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.decoding import translate_texts
from bigmodel_hf.translator import Translator

TEXTS = ["a cat sees a dog", "the old man buys bread in the city every day", "hello"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random model saved with a generation config that asks for beam 3 and at most 7 new tokens."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("model")
    tokenizer = train_translation_tokenizer(TEXTS * 5, vocab_size=70, min_frequency=1)
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer)))
    model.generation_config.num_beams, model.generation_config.max_length = 3, 8
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def test_defaults_come_from_the_saved_generation_config(checkpoint):
    folder, model, tokenizer = checkpoint
    translator = Translator.from_pretrained(folder, device="cpu")
    expected = translate_texts(model, tokenizer, TEXTS, num_beams=3, max_new_tokens=7)
    assert translator(TEXTS) == expected
    assert translator(TEXTS[0]) == expected[0]  # a str in, a str out
    assert translator.model.device.type == "cpu" and not translator.model.training


def test_call_overrides_beam_size_and_length(checkpoint):
    folder, model, tokenizer = checkpoint
    translator = Translator.from_pretrained(folder, device="cpu")
    assert translator(TEXTS, num_beams=1, max_new_tokens=2, batch_size=2) == translate_texts(
        model, tokenizer, TEXTS, num_beams=1, max_new_tokens=2)


def test_cli_translates_arguments_and_stdin_lines(checkpoint, capsys, monkeypatch):
    folder, model, tokenizer = checkpoint
    expected = translate_texts(model, tokenizer, TEXTS, num_beams=1, max_new_tokens=7)
    cli_main(["translate", "--model", str(folder), "--num_beams", "1", "--device", "cpu", *TEXTS])
    assert capsys.readouterr().out.splitlines() == expected
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(TEXTS) + "\n"))
    cli_main(["translate", "--model", str(folder), "--num_beams", "1", "--device", "cpu"])
    assert capsys.readouterr().out.splitlines() == expected


def test_blank_lines_give_empty_lines_in_place(checkpoint, capsys, monkeypatch):
    folder, model, tokenizer = checkpoint
    translator = Translator.from_pretrained(folder, device="cpu")
    expected = translate_texts(model, tokenizer, TEXTS[:2], num_beams=1, max_new_tokens=7)
    assert all(expected)  # the tiny model writes something for a real sentence
    assert translator(["", TEXTS[0], "   ", TEXTS[1], "\t"], num_beams=1) == ["", expected[0], "", expected[1], ""]
    assert translator("  ") == "" and translator([]) == []
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"\n{TEXTS[0]}\n \n{TEXTS[1]}\n\n"))
    cli_main(["translate", "--model", str(folder), "--num_beams", "1", "--device", "cpu"])
    assert capsys.readouterr().out.split("\n") == ["", expected[0], "", expected[1], "", ""]


BAD_OPTIONS = {
    "batch_size_negative": (["--batch_size", "-1"], "--batch_size must be a positive whole number, got -1"),
    "batch_size_zero": (["--batch_size", "0"], "--batch_size must be a positive whole number, got 0"),
    "num_beams_negative": (["--num_beams", "-3"], "--num_beams must be a positive whole number, got -3"),
    "num_beams_zero": (["--num_beams", "0"], "--num_beams must be a positive whole number, got 0"),
    "max_new_tokens_zero": (["--max_new_tokens", "0"], "--max_new_tokens must be a positive whole number, got 0"),
    "length_penalty_nan": (["--length_penalty", "nan"], "--length_penalty must be a finite number, got nan"),
    "device_bogus": (["--device", "bogus"], "--device 'bogus' is not a device name; use cpu, cuda, cuda:1 or mps"),
}


@pytest.mark.parametrize("flags, message", BAD_OPTIONS.values(), ids=BAD_OPTIONS)
def test_bad_decoding_options_stop_with_one_line(checkpoint, capsys, flags, message):
    folder, _, _ = checkpoint
    with pytest.raises(SystemExit) as stopped:
        cli_main(["translate", "--model", str(folder), *flags, *TEXTS])
    assert str(stopped.value.code).startswith(f"bigmodel-hf translate: {message}")
    assert "\n" not in str(stopped.value.code) and capsys.readouterr().out == ""  # nothing translated


@pytest.mark.parametrize("option, value", [("num_beams", 0), ("max_new_tokens", 0), ("length_penalty", float("nan")),
                                           ("batch_size", -1), ("num_beams", 2.5)])
def test_the_translator_refuses_bad_options_with_a_clear_value_error(checkpoint, option, value):
    folder, _, _ = checkpoint
    translator = Translator.from_pretrained(folder, device="cpu")
    with pytest.raises(ValueError, match=f"^--{option} must be a "):
        translator(TEXTS, **{option: value})
    with pytest.raises(ValueError, match="'bogus' is not a device name"):
        Translator(translator.model, translator.tokenizer, device="bogus")


@pytest.mark.parametrize("where, message", [
    ("config.json", "config.json is a file; expected a model folder (config.json and model.safetensors"),
    ("missing_run/", "missing_run/: no such folder, and not a Hub id; expected a model folder"),
    ("/no/such/run", "/no/such/run: no such folder, and not a Hub id"),
    ("empty", "empty is a folder without config.json; expected a model folder"),
])
def test_a_model_that_is_a_file_or_missing_says_what_was_expected(checkpoint, tmp_path, monkeypatch, where, message):
    folder, _, _ = checkpoint
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    model = str(folder / where) if where == "config.json" else where
    with pytest.raises(SystemExit) as stopped:
        cli_main(["translate", "--model", model, "--device", "cpu", "a cat"])
    text = str(stopped.value.code)
    assert "\n" not in text and text.startswith("bigmodel-hf translate: ") and message in text
    assert "or a Hub id (user/name)" in text


def test_a_hub_id_that_cannot_be_loaded_says_so_in_one_line(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # tests never reach the network
    with pytest.raises(SystemExit) as stopped:
        cli_main(["translate", "--model", "outputs/no-such-run", "--device", "cpu", "a cat"])
    text = str(stopped.value.code)
    assert text.startswith("bigmodel-hf translate: outputs/no-such-run: no such local folder, and it could not be "
                           "loaded as a Hub id (") and "\n" not in text and text.endswith("or a Hub id (user/name).")


@pytest.fixture(scope="module")
def prefixed(checkpoint, tmp_path_factory):
    """The same model saved with the source prefix recorded in its config (as the recipe does)."""
    from bigmodel_hf.pretrained import record_source_prefix

    _, model, tokenizer = checkpoint
    folder = tmp_path_factory.mktemp("prefixed")
    record_source_prefix(model.config, "translate: ", "en", "es")
    try:
        model.save_pretrained(folder)
    finally:
        record_source_prefix(model.config, None, "en", "es")
    tokenizer.save_pretrained(folder)
    return folder


def test_the_translator_and_the_engine_put_the_recorded_prefix_before_sources(checkpoint, prefixed, capsys,
                                                                              monkeypatch):
    """Issue 15: `bigmodel-hf translate` ignored the run's source_prefix while the interactive engine used it."""
    import json

    from bigmodel_hf.interactive import CompletionEngine
    from bigmodel_hf import decoding as generation

    assert json.loads((prefixed / "config.json").read_text())["task_specific_params"] == {
        "translation_en_to_es": {"prefix": "translate: "}}  # what a transformers-only user finds
    encoded = []  # the texts that reach the tokenizer
    real_encode = generation._encode
    monkeypatch.setattr(generation, "_encode", lambda tokenizer, texts, *rest: encoded.extend(texts) or real_encode(tokenizer, texts, *rest))
    translator = Translator.from_pretrained(prefixed, device="cpu")
    translator(TEXTS, num_beams=1)
    cli_main(["translate", "--model", str(prefixed), "--num_beams", "1", "--device", "cpu", "", *TEXTS])
    assert capsys.readouterr().out.split("\n")[0] == ""  # a blank line gets no prefix, and stays blank
    assert sorted(encoded) == sorted(["translate: " + text for text in TEXTS] * 2)
    engine = CompletionEngine.from_pretrained(prefixed)
    tokenizer_inputs = []
    real_tokenizer = engine.tokenizer
    engine.tokenizer = lambda texts, **kwargs: tokenizer_inputs.extend(texts) or real_tokenizer(texts, **kwargs)
    engine.encode(TEXTS[0])
    assert tokenizer_inputs == ["translate: " + TEXTS[0]]  # the same input as `translate`


def test_a_run_saved_before_the_prefix_was_recorded_takes_it_from_run_config_yaml(checkpoint, tmp_path):
    import shutil

    from bigmodel_hf.interactive import CompletionEngine

    folder, _, _ = checkpoint
    shutil.copytree(folder, tmp_path / "run")
    (tmp_path / "run" / "run_config.yaml").write_text("source_prefix: 'en2es: '\nsource_lang: en\n")
    assert Translator.from_pretrained(tmp_path / "run", device="cpu").source_prefix == "en2es: "
    assert CompletionEngine.from_pretrained(tmp_path / "run").source_prefix == "en2es: "
    assert Translator.from_pretrained(folder, device="cpu").source_prefix == ""
