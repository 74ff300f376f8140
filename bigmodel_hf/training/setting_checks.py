"""Value checks on a parsed run, before anything is built: a bad value fails at start, naming the fix.

`TrainingArguments` accepts a zero batch size, a negative learning rate or a warmup longer than the run,
and the failure comes minutes later (or never, as a silently flat learning rate); these checks don't wait.
"""

import math
from collections.abc import Mapping


class ConfigError(ValueError):
    """A setting of the run is unknown, renamed, or has an unusable value."""


def _positive(values, key, kind=int):
    value = values.get(key)
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        return f"{key} must be a positive {kind.__name__}, got {value!r}"
    return None


def check_values(values: Mapping) -> None:
    """Raise `ConfigError` listing every problem found in the flat run settings."""
    problems = [  # NaN and infinity slip through every comparison below (nan > 0 is False, so is nan < 0)
        f"{key} must be a finite number, got {value}" for key, value in values.items()
        if isinstance(value, float) and not math.isfinite(value)
    ]
    problems += [
        _positive(values, key, kind)
        for key, kind in [
            ("per_device_train_batch_size", int),
            ("per_device_eval_batch_size", int),
            ("gradient_accumulation_steps", int),
            ("learning_rate", float),
            ("max_tokens", int),
            ("num_beams", int),
            ("generation_num_beams", int),
            ("max_source_length", int),
            ("max_target_length", int),
            ("generation_max_length", int),
            ("vocab_size", int),
            ("block_size", int),
            ("lora_r", int),
            ("max_new_tokens", int),
        ]
    ]
    max_steps = values.get("max_steps")
    max_steps = -1 if max_steps is None else max_steps
    if max_steps == 0 or max_steps < -1:
        problems.append(f"max_steps must be a positive number of steps (or -1 to use num_train_epochs), got {max_steps}")
    if max_steps < 0 and (values.get("num_train_epochs") or 0) <= 0:
        problems.append(f"num_train_epochs must be positive when max_steps is unset, got {values.get('num_train_epochs')}")
    warmup = values.get("warmup_steps", 0) or 0
    if warmup < 0:
        problems.append(f"warmup_steps must be >= 0 (a float below 1 is a fraction of all steps), got {warmup}")
    elif warmup >= 1 and 0 < max_steps <= warmup:
        problems.append(
            f"max_steps ({max_steps}) must exceed warmup_steps ({warmup}); the learning rate would never finish "
            "warming up. Lower warmup_steps or give it as a fraction, e.g. warmup_steps: 0.1"
        )
    smoothing = values.get("label_smoothing_factor", 0.0) or 0.0
    if not 0.0 <= smoothing < 1.0:
        problems.append(f"label_smoothing_factor must be in [0, 1), got {smoothing}")
    problems += _regularization_problems(values)
    problems += _checkpoint_problems(values)
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError("Invalid settings:\n  " + "\n  ".join(problems))


def advisories(values: Mapping) -> list[str]:
    """Legal settings that probably don't do what was meant (logged as warnings, not errors)."""
    notes = []
    max_steps = values.get("max_steps") or -1
    for kind in ("eval", "save"):
        steps = values.get(f"{kind}_steps")
        if str(values.get(f"{kind}_strategy", "")).endswith("steps") and 0 < max_steps < (steps or 0):
            notes.append(f"{kind}_steps ({steps:g}) exceeds max_steps ({max_steps}): no {kind} happens during "
                         f"training; lower {kind}_steps to see {'validation scores' if kind == 'eval' else 'checkpoints'}")
    return notes


def _checkpoint_problems(values: Mapping) -> list[str]:
    """Early stopping and checkpoint averaging need evaluations and enough kept checkpoints."""
    problems = []
    patience = values.get("early_stopping_patience", 0) or 0
    if patience < 0:
        problems.append(f"early_stopping_patience must be >= 0 (0 = off), got {patience}")
    elif patience > 0:
        if str(values.get("eval_strategy", "no")).lower().endswith("no"):
            problems.append("early_stopping_patience needs evaluations: set eval_strategy to steps or epoch")
        if not values.get("metric_for_best_model"):
            problems.append("early_stopping_patience needs metric_for_best_model (e.g. bleu or loss)")
    average = values.get("average_last_checkpoints", 0) or 0
    limit = values.get("save_total_limit")
    if average < 0:
        problems.append(f"average_last_checkpoints must be >= 0 (0 = off), got {average}")
    elif average > 1 and limit is not None and limit < average:
        problems.append(
            f"average_last_checkpoints={average} needs save_total_limit >= {average} (it is {limit}), "
            "or older checkpoints are deleted before they can be averaged"
        )
    return problems


def _regularization_problems(values: Mapping) -> list[str]:
    """Dropout probabilities, BPE-dropout and the wall-clock budget."""
    problems = []
    for key in ("dropout", "attention_dropout", "activation_dropout", "bpe_dropout"):
        value = values.get(key)
        if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
            problems.append(f"{key} must be a probability in [0, 1), got {value!r}")
    if (values.get("bpe_dropout") or 0) > 0 and values.get("tokenizer_type", "bpe") != "bpe" \
            and not values.get("tokenizer_name") and not values.get("model_name_or_path"):
        problems.append(f"bpe_dropout needs tokenizer_type bpe (got {values.get('tokenizer_type')!r}); "
                        "set bpe_dropout: 0 or train a BPE tokenizer")
    if values.get("train_clock", "wall") not in ("wall", "cpu"):
        problems.append(f"train_clock must be wall or cpu, got {values.get('train_clock')!r}")
    minutes = values.get("max_train_minutes")
    if minutes is not None and not (isinstance(minutes, (int, float)) and minutes > 0):
        problems.append(f"max_train_minutes must be a positive number of minutes (unset = no limit), got {minutes!r}")
    return problems
