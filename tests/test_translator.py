"""The translate API and `bigmodel-hf translate`: decoding defaults from the checkpoint, batching, stdin."""

import io
import sys

import pytest
import torch
from tiny_models import tiny_config

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.cli import main as cli_main
from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.training.generation import translate_texts
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
