"""Mixed precision: whether the hardware makes bfloat16 worth it, and float32 evaluation under autocast.

bfloat16 autocast roughly doubles matmul throughput on GPUs since Ampere and on CPUs with AVX-512 BF16 or
AMX, while master weights, optimizer states and saved checkpoints stay float32. Elsewhere (older GPUs
emulate bfloat16; plain AVX2 CPUs convert in software) it only costs accuracy, so it stays off there.
"""

import contextlib
from pathlib import Path

import torch

FAST_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags the (Linux) kernel reports for the first CPU; empty where there is no cpuinfo."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def fast_bf16_device() -> str | None:
    """'cuda' or 'cpu' when the device training will run on has native bfloat16 matmuls; else None."""
    if torch.cuda.is_available():
        major, _ = torch.cuda.get_device_capability()
        return "cuda" if major >= 8 else None  # Ampere and newer; is_bf16_supported() also counts emulation
    if torch.backends.mps.is_available():
        return None  # the recipes train in float32 there
    return "cpu" if FAST_BF16_CPU_FLAGS & cpu_flags() else None


@contextlib.contextmanager
def float32_forward(model):
    """Run `model` without the autocast Accelerate wrapped its forward in (a no-op for unwrapped models).

    `Accelerator.prepare` sets an instance attribute `forward` (autocast around the class's forward) and
    marks the model with `_original_forward`; removing the attribute for a while exposes the float32 forward.
    """
    wrapped = model.__dict__.pop("forward", None) if "_original_forward" in model.__dict__ else None
    try:
        yield model
    finally:
        if wrapped is not None:
            model.__dict__["forward"] = wrapped


class Float32EvaluationMixin:
    """Evaluate and predict in float32 even when training runs under bf16/fp16 autocast.

    The metrics a run reports (validation BLEU or perplexity, the best-checkpoint choice, the final test
    scores) are then those of the float32 weights it saves, which is what a user reloads.
    """

    def prediction_step(self, model, *args, **kwargs):
        with float32_forward(self.model):
            return super().prediction_step(model, *args, **kwargs)


def training_length_multiple(training_args) -> int | None:
    """The multiple that training batches' sequence lengths are padded to: 8 under bf16 autocast on CPU.

    In bfloat16, oneDNN builds and keeps kernels and buffers for each matrix shape it meets, and token-budget
    batches come in hundreds of lengths: the recipe's vaswani-small run on `bible_en_es` grew to 3.0 GB of
    anonymous memory after 350 steps and 5.1 GB after 2,100. In a 200-step probe with random lengths, bf16
    grew from 1.3 to 2.9 GB, the same lengths padded to multiples of 8 stayed at 1.0-1.1 GB, and float32 at
    0.85-0.89 GB (none of them grows with padding or in float32).
    """
    return 8 if training_args.bf16 and training_args.device.type == "cpu" else None


@contextlib.contextmanager
def short_sequence_bf16_attention(model, training_args):
    """Eager attention while training under bf16 autocast on CPU, SDPA again afterwards.

    torch's CPU SDPA kernel gains nothing from bfloat16 at translation lengths: at 64 tokens a bf16
    seq2seq training step runs about 16% faster end to end with eager attention (benchmarks/results/speed.md).
    """
    switch = (training_args.bf16 and training_args.device.type == "cpu"
              and model.config._attn_implementation == "sdpa")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if switch:
            model.set_attn_implementation("sdpa")
