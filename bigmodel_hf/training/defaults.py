"""Our defaults over transformers', per recipe: what a run gets when neither YAML nor flags say otherwise.

transformers 5 logs nowhere by default (`report_to="none"`), never evaluates, and keeps every
checkpoint; a training recipe wants the opposite. Values here are flag names, like a YAML run file.
"""

import logging
import os
from collections.abc import Mapping

import torch

from .precision import fast_bf16_device

logger = logging.getLogger(__name__)

# Recorded in run_config.yaml even when nobody set them: their default depends on the hardware, and a rerun
# elsewhere must get the same.
ALWAYS_RECORDED = {"bf16"}

# Shared by both recipes.
COMMON_DEFAULTS = {
    "report_to": ["tensorboard"],
    "logging_steps": 50,
    "logging_first_step": True,
    "eval_strategy": "steps",
    "eval_steps": 500,
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 5,
    "load_best_model_at_end": True,
    "warmup_steps": 0.05,  # a float below 1 is a fraction of all steps in transformers 5
    "max_grad_norm": 1.0,
    "weight_decay": 0.01,
    "adam_beta2": 0.98,
    "per_device_eval_batch_size": 64,
    "num_train_epochs": 10,
    "dataloader_num_workers": 0,
    "seed": 42,
    # Rerunning an interrupted command continues from its newest complete checkpoint (none: a fresh start);
    # `--resume_from_checkpoint none` forces a fresh start over existing checkpoints.
    "resume_from_checkpoint": "last",
}

TRANSLATION_DEFAULTS = {
    **COMMON_DEFAULTS,
    "output_dir": "outputs/translate",
    # from scratch: the model size, vocabulary, token budget and learning rate chosen from the corpus size and the
    # device (training/auto_settings.py); the values below serve a named preset or a pretrained model
    "preset": "auto",
    "lr_scheduler_type": "inverse_sqrt",
    "learning_rate": 7e-4,
    "label_smoothing_factor": 0.1,
    "per_device_train_batch_size": 32,  # used only where the token budget is switched off
    # Length-bucketed batches of at most this many tokens: fixed-size batches of real sentences are about
    # half padding (benchmarks/results/data_pipeline.md). A --per_device_train_batch_size given in a file
    # or on the command line replaces it; `--max_tokens 0` switches it off.
    "max_tokens": 2048,
    "predict_with_generate": True,
    "generation_num_beams": 1,  # greedy during training; the final evaluation uses num_beams
    "generation_max_length": 128,
    "metric_for_best_model": "bleu",
    "greater_is_better": True,
}

# With a time budget (`max_train_minutes`) and no schedule asked for, the translation recipe holds its peak rate,
# then decays to zero over the budget's last fifth, so the run ends annealed instead of at inverse-sqrt's
# still-high rate (+4.9 BLEU at 60 CPU-minutes on bible_en_es, +8.9 at 10 on l10n/en_es, -1.6 at 10 on
# bible_en_es: benchmarks/results/quality_vs_eole_bible_en_es.md).
TRANSLATION_BUDGET_DEFAULTS = {"lr_scheduler_type": "warmup_stable_decay", "budget_schedule": True}

# With a time budget and no length asked for (`num_train_epochs`, `max_steps`), the budget ends the run: the
# default 10 epochs (2,820 steps) would stop l10n/en_es with 4,000 pieces at about 31 of 60 CPU-minutes on the
# benchmark's machine (benchmarks/results/auto_preset.md).
# The epoch count becomes this ceiling instead (reaching it still anneals: the budget schedule's progress is the
# larger of its two fractions), and a fractional warmup is rescaled so it keeps its length in steps.
BUDGET_EPOCH_CEILING = 1000

LM_DEFAULTS = {
    **COMMON_DEFAULTS,
    "output_dir": "outputs/generate_text",
    "preset": "modern-small",
    "lr_scheduler_type": "cosine",
    "learning_rate": 6e-4,
    "weight_decay": 0.1,
    "adam_beta2": 0.95,
    "per_device_train_batch_size": 16,
    "metric_for_best_model": "perplexity",
    "greater_is_better": False,
}


def launched_on_cpu_processes() -> bool:
    """True when a launcher started several processes but there is no GPU to give them.

    torchrun / `accelerate launch --multi_gpu` then start N processes, but Accelerate only joins them
    (gloo backend, gradients all-reduced) when told it runs on CPU; otherwise each process trains alone.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return world_size > 1 and not torch.cuda.is_available()


def environment_defaults() -> dict:
    """Defaults that depend on the hardware and on how the process was launched.

    bfloat16 autocast is on where the device has native bfloat16 matmuls (`--bf16 false` turns it off; an
    explicit `--fp16 true` replaces it). On CPU, transformers only allows bf16 when told it runs on CPU.
    """
    defaults = {"use_cpu": True} if launched_on_cpu_processes() else {}
    device = fast_bf16_device()
    if device is not None:
        defaults["bf16"] = True
        if device == "cpu":
            defaults["use_cpu"] = True
    return defaults


def settle_defaults(values: dict, user_keys: set, budget_defaults: Mapping | None = None) -> None:
    """Where a default meets what the user set (`user_keys`: keys given in the file or on the command line),
    in the parsed flat `values`:

    - the hardware's bf16 default gives way to an explicit fp16;
    - a batch size the user asked for replaces the default token budget (unless max_tokens is given too);
    - `max_tokens 0` switches the token budget off;
    - a run with a time budget takes `budget_defaults` (a recipe's schedule for it), unless the user set any of
      their keys, and runs until the budget ends it, unless the user set its length (`lift_epoch_cap`).
    """
    if budget_defaults and values.get("max_train_minutes"):
        if not user_keys & set(budget_defaults):
            values.update(budget_defaults)
            logger.info("time budget: learning-rate schedule %s (set --lr_scheduler_type or --budget_schedule to "
                        "choose another)", ", ".join(f"{k}={v}" for k, v in budget_defaults.items()))
        if not user_keys & {"num_train_epochs", "max_steps"}:
            lift_epoch_cap(values)
    if values.get("bf16") and "bf16" not in user_keys:
        if values.get("fp16"):
            values["bf16"] = False
        else:
            logger.info("bf16 autocast on: this device has native bfloat16 matmuls (--bf16 false turns it off)")
    if "per_device_train_batch_size" in user_keys and "max_tokens" not in user_keys and values.get("max_tokens"):
        values["max_tokens"] = None
    if values.get("max_tokens") == 0:
        values["max_tokens"] = None


def lift_epoch_cap(values: dict) -> None:
    """Raise the epoch count to `BUDGET_EPOCH_CEILING`; a fractional `warmup_steps` (a share of all steps in
    transformers 5) shrinks by the same factor, so the warmup stays the steps it had under the old count."""
    epochs = values.get("num_train_epochs") or 0
    if epochs >= BUDGET_EPOCH_CEILING:
        return
    warmup = values.get("warmup_steps") or 0
    if 0 < warmup < 1:
        values["warmup_steps"] = warmup * epochs / BUDGET_EPOCH_CEILING
    values["num_train_epochs"] = BUDGET_EPOCH_CEILING
    logger.info("time budget: the budget ends the run (epochs %s -> %s; set --num_train_epochs or --max_steps to "
                "stop sooner)", f"{epochs:g}", BUDGET_EPOCH_CEILING)
