"""The model's numerical promises on a CUDA device (marked `gpu`; skipped, saying why, without one).

`benchmarks/gpu_check.py` runs these on a lent GPU and records the outcome in benchmarks/results/gpu.md. The same
promises are tested on CPU in test_modeling.py; here the kernels differ (cuBLAS, SDPA's flash / memory-efficient
back ends, bf16 tensor cores), so the tolerances are those of float32 GPU matmuls (TF32 off) and of bf16.
"""

import pytest
import torch

from bigmodel_hf import BigModelConfig, BigModelForCausalLM, BigModelForSeq2SeqLM

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run benchmarks/gpu_check.py on one)"),
]

PRESETS = ["vaswani-small", "modern-small"]


def tiny(preset: str, **overrides) -> BigModelConfig:
    fields = dict(vocab_size=97, d_model=64, encoder_layers=2, decoder_layers=2, ffn_dim=128, dropout=0.0,
                  attn_implementation="sdpa")
    fields.update(overrides)
    return BigModelConfig.from_preset(preset, **fields)


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 would make float32 matmuls agree only to ~1e-3; the promises below are about our code, not TF32."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("preset", PRESETS)
def test_cached_decoding_equals_uncached_on_cuda(preset):
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny(preset)).cuda().eval()
    source = torch.randint(3, 97, (3, 11), device="cuda")
    kwargs = dict(max_new_tokens=12, do_sample=False, num_beams=1, eos_token_id=None)
    with torch.inference_mode():
        cached = model.generate(source, use_cache=True, **kwargs)
        uncached = model.generate(source, use_cache=False, **kwargs)
        full = model(input_ids=source, decoder_input_ids=cached[:, :-1]).logits
        steps = model.generate(source, use_cache=True, output_logits=True, return_dict_in_generate=True, **kwargs)
    assert torch.equal(cached, uncached)
    stepwise = torch.stack(steps.logits, dim=1)
    # float32 on CUDA without TF32: reductions in another order than one full forward, ~1e-6 relative.
    torch.testing.assert_close(stepwise, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("preset", PRESETS)
def test_eager_equals_sdpa_on_cuda(preset):
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny(preset)).cuda().eval()
    source = torch.randint(3, 97, (2, 9), device="cuda")
    target = torch.randint(3, 97, (2, 7), device="cuda")
    with torch.inference_mode():
        sdpa = model(input_ids=source, decoder_input_ids=target).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids=source, decoder_input_ids=target).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("preset", PRESETS)
def test_right_padded_source_equals_unpadded_on_cuda(preset):
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny(preset)).cuda().eval()
    pad = model.config.pad_token_id
    short = torch.randint(3, 97, (1, 6), device="cuda")
    padded = torch.cat([short, torch.full((1, 4), pad, device="cuda")], dim=1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], dim=1).long().cuda()
    target = torch.randint(3, 97, (1, 5), device="cuda")
    with torch.inference_mode():
        alone = model(input_ids=short, decoder_input_ids=target).logits
        with_pad = model(input_ids=padded, attention_mask=mask, decoder_input_ids=target).logits
    torch.testing.assert_close(with_pad, alone, atol=1e-4, rtol=1e-4)


def test_left_padded_prompt_equals_unpadded_on_cuda():
    torch.manual_seed(0)
    model = BigModelForCausalLM(tiny("modern-small", is_encoder_decoder=False)).cuda().eval()
    pad = model.config.pad_token_id
    prompt = torch.randint(3, 97, (1, 6), device="cuda")
    padded = torch.cat([torch.full((1, 3), pad, device="cuda"), prompt], dim=1)
    mask = torch.cat([torch.zeros(1, 3), torch.ones(1, 6)], dim=1).long().cuda()
    kwargs = dict(max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=pad)
    with torch.inference_mode():
        alone = model.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs)[:, 6:]
        batched = model.generate(padded, attention_mask=mask, **kwargs)[:, 9:]
    assert torch.equal(alone, batched)


@pytest.mark.parametrize("preset", PRESETS)
def test_bf16_autocast_training_step_tracks_float32_on_cuda(preset):
    """One AdamW step under bf16 autocast: finite loss within bf16 precision of the float32 loss, and the
    loss falls over a few steps on a fixed batch (the step trains, not only runs)."""
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny(preset)).cuda().train()
    batch = {"input_ids": torch.randint(3, 97, (4, 10), device="cuda"),
             "labels": torch.randint(3, 97, (4, 8), device="cuda")}
    with torch.no_grad():
        reference = model(**batch).loss.item()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    # bf16 keeps 8 bits of mantissa: a cross-entropy near log(97) ~ 4.6 agrees to about 1%.
    assert abs(losses[0] - reference) < 0.05 * reference
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
