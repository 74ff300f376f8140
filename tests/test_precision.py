"""bf16 by default where the hardware has it, and float32 evaluation under autocast."""

import torch
from accelerate import Accelerator

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.training import defaults, precision
from bigmodel_hf.training.translation import parse_translation_config
from tiny_models import tiny_config


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx512f", "avx512_bf16"}
    assert precision.cpu_flags(tmp_path / "missing") == set()


def test_bf16_is_a_default_only_on_hardware_with_native_bf16(monkeypatch):
    monkeypatch.setattr(defaults, "fast_bf16_device", lambda: "cpu")
    assert defaults.environment_defaults() == {"bf16": True, "use_cpu": True}
    monkeypatch.setattr(defaults, "fast_bf16_device", lambda: "cuda")
    assert defaults.environment_defaults() == {"bf16": True}
    monkeypatch.setattr(defaults, "fast_bf16_device", lambda: None)
    assert defaults.environment_defaults() == {}


def test_the_bf16_default_yields_to_the_user(monkeypatch):
    monkeypatch.setattr(defaults, "fast_bf16_device", lambda: "cpu")
    training_args = lambda *flags: parse_translation_config(["--train_file", "x.jsonl", *flags]).training  # noqa: E731
    assert training_args().bf16
    assert "bf16" in parse_translation_config(["--train_file", "x.jsonl"]).resolved()  # recorded for reruns
    assert not training_args("--bf16", "false").bf16
    monkeypatch.setattr(defaults, "fast_bf16_device", lambda: None)
    assert not training_args().bf16


def test_float32_forward_undoes_accelerates_autocast_for_its_duration():
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config("modern", True)).eval()
    batch = dict(input_ids=torch.randint(4, 64, (2, 7)), decoder_input_ids=torch.randint(4, 64, (2, 5)))
    with torch.no_grad():
        float32_logits = model(**batch).logits
        prepared = Accelerator(mixed_precision="bf16", cpu=True).prepare(model)
        autocast_logits = prepared(**batch).logits
        with precision.float32_forward(model):
            unwrapped_logits = prepared(**batch).logits
        again = prepared(**batch).logits
    assert not torch.allclose(autocast_logits, float32_logits, atol=1e-5)  # autocast really was on
    torch.testing.assert_close(unwrapped_logits, float32_logits, rtol=0, atol=0)
    torch.testing.assert_close(again, autocast_logits, rtol=0, atol=0)  # and is back afterwards


def test_eager_attention_only_while_training_under_cpu_bf16():
    model = BigModelForSeq2SeqLM(tiny_config("modern", True))
    cpu_bf16 = type("Args", (), {"bf16": True, "device": torch.device("cpu")})()
    with precision.short_sequence_bf16_attention(model, cpu_bf16):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == "sdpa"
    cpu_bf16.bf16 = False
    with precision.short_sequence_bf16_attention(model, cpu_bf16):
        assert model.config._attn_implementation == "sdpa"
