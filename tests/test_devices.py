"""Inference goes where Accelerate would train (`bigmodel_hf.devices`), unless `--device` / `device=` says."""

import pytest
import torch
from accelerate import PartialState
from tiny_models import tiny_config

import bigmodel_hf.devices as devices
from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.cli import main as cli_main
from bigmodel_hf.interactive import CompletionEngine
from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.translator import Translator


@pytest.fixture
def fresh_accelerate_state():
    PartialState._reset_state()
    yield
    PartialState._reset_state()


def test_default_is_accelerates_device_and_honours_accelerate_use_cpu(fresh_accelerate_state, monkeypatch):
    """With an accelerator present (reported as Accelerate detects it), that is the device; ACCELERATE_USE_CPU=1,
    as for training, makes it CPU. On this CPU-only machine the unpatched answer is CPU."""
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert devices.default_device() == torch.device("cpu")
    PartialState._reset_state()
    monkeypatch.setattr("accelerate.state.get_torch_accelerator_backend", lambda *a, **k: ("cuda", torch.cuda))
    assert devices.default_device() == torch.device("cuda")
    PartialState._reset_state()
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    assert devices.default_device() == torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tokenizer = train_translation_tokenizer(["a cat sees a dog", "un gato ve un perro"] * 5, vocab_size=60,
                                            min_frequency=1)
    torch.manual_seed(0)
    BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def chosen(monkeypatch):
    """`default_device` replaced by one that records its calls and answers `meta` (a device no code path of
    ours picks by itself, so seeing it proves the choice was used)."""
    calls = []

    def choose():
        calls.append(1)
        return torch.device("meta")

    monkeypatch.setattr(devices, "default_device", choose)
    return calls


def test_translator_and_engine_use_the_default_device_unless_told(checkpoint, chosen):
    assert Translator.from_pretrained(checkpoint).model.device.type == "meta"
    assert CompletionEngine.from_pretrained(checkpoint).model.device.type == "meta"
    assert len(chosen) == 2
    assert Translator.from_pretrained(checkpoint, device="cpu").model.device.type == "cpu"
    assert CompletionEngine.from_pretrained(checkpoint, device="cpu").model.device.type == "cpu"
    assert len(chosen) == 2  # an explicit device never asks


def test_cli_without_device_asks_and_with_device_does_not(checkpoint, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(devices, "default_device", lambda: calls.append(1) or torch.device("cpu"))
    cli_main(["translate", "--model", str(checkpoint), "--num_beams", "1", "a cat"])
    assert len(calls) >= 1 and capsys.readouterr().out.count("\n") == 1
    calls.clear()
    cli_main(["translate", "--model", str(checkpoint), "--num_beams", "1", "--device", "cpu", "a cat"])
    assert calls == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_device_this_machine_lacks_is_one_line(checkpoint, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["translate", "--model", str(checkpoint), "--device", "cuda", "a cat"])
    assert stop.value.code not in (0, None)
    message = str(stop.value.code) if isinstance(stop.value.code, str) else capsys.readouterr().err
    assert "--device 'cuda': this machine has no cuda device; use cpu or leave --device unset." in message
