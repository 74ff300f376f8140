"""Trainer checkpoints on disk: find them in step order, and average the weights of the last N.

Averaging the last few checkpoints (Vaswani et al. 2017; Popel & Bojar 2018) usually gains a little BLEU
for free, because late checkpoints sit around the same optimum and their mean is closer to its centre.
"""

import json
import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from .integrity import IncompleteCheckpointError, MissingCheckpointError, checkpoint_problem

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """`checkpoint-<step>` folders under `output_dir`, oldest step first (numeric, not lexical, order)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """`list_checkpoints` without the half-written ones a killed run leaves (see `integrity`)."""
    complete = []
    for checkpoint in list_checkpoints(output_dir):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            complete.append(checkpoint)
        else:
            logger.warning("Skipping %s: %s.", checkpoint, problem)
    return complete


def read_safetensors_weights(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The model weights saved in a checkpoint folder (single file or sharded with an index)."""
    checkpoint = Path(checkpoint)
    single, index = checkpoint / "model.safetensors", checkpoint / "model.safetensors.index.json"
    if single.is_file():
        return load_file(single)
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        weights = {}
        for shard in shards:
            weights.update(load_file(checkpoint / shard))
        return weights
    raise FileNotFoundError(f"No model.safetensors (or index) in {checkpoint}.")


def average_checkpoints(checkpoints: list[str | Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the floating-point weights of `checkpoints` (integer buffers: the last one's).

    Sums in float32 one checkpoint at a time, so memory stays at two copies of the model.
    """
    if not checkpoints:
        raise ValueError("average_checkpoints needs at least one checkpoint.")
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for index, checkpoint in enumerate(checkpoints):
        weights = read_safetensors_weights(checkpoint)
        if index == 0:
            dtypes = {name: tensor.dtype for name, tensor in weights.items()}
            total = {name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in weights.items()}
            continue
        if weights.keys() != total.keys():
            raise ValueError(f"{checkpoint} holds different weights than {checkpoints[0]}; cannot average them.")
        for name, tensor in weights.items():
            total[name] = total[name] + tensor.float() if tensor.is_floating_point() else tensor
    count = len(checkpoints)
    return {
        name: (tensor / count).to(dtypes[name]) if dtypes[name].is_floating_point else tensor
        for name, tensor in total.items()
    }


def average_last_checkpoints(output_dir: str | Path, n: int) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """Average the `n` checkpoints with the highest steps; returns (weights, the folders used)."""
    checkpoints = list_checkpoints(output_dir)[-n:]
    if len(checkpoints) < n:
        raise ValueError(f"Asked to average {n} checkpoints but {output_dir} has {len(checkpoints)}.")
    return average_checkpoints(checkpoints), checkpoints


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy `weights` into `model`. Keys may be missing only where a weight is tied to a loaded one.

    safetensors checkpoints store a tied weight once (e.g. the output projection shares the embeddings).
    """
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"Weights not in the model: {result.unexpected_keys[:5]}")
    state = model.state_dict()
    loaded_storages = {state[name].data_ptr() for name in weights}
    untied = [name for name in result.missing_keys if state[name].data_ptr() not in loaded_storages]
    if untied:
        raise ValueError(f"Model weights missing from the averaged checkpoint: {untied[:5]}")


RESUME_LAST = {"last", "auto", "true", "yes"}


def resolve_resume_checkpoint(value: str | bool | None, output_dir: str | Path) -> str | None:
    """`--resume_from_checkpoint` -> a checkpoint folder or None.

    "last" (also "auto", "true") picks the newest complete `checkpoint-<step>` in `output_dir` (a
    half-written one, left by a run killed while saving, is skipped with a warning), or starts fresh when
    there is none, so one command both starts and continues an interrupted run. A path must exist and be
    complete (`IncompleteCheckpointError` otherwise).
    """
    if value is None or value is False or str(value).lower() in {"", "none", "false", "no"}:
        return None
    if value is True or str(value).lower() in RESUME_LAST:
        checkpoints = complete_checkpoints(output_dir)
        return str(checkpoints[-1]) if checkpoints else None
    if not Path(value).is_dir():
        raise MissingCheckpointError(f"resume_from_checkpoint={value!r} is not a checkpoint folder; use 'last' to "
                                     f"pick the newest checkpoint in {output_dir}.")
    problem = checkpoint_problem(value)
    if problem is not None:
        raise IncompleteCheckpointError(f"Cannot resume from {value}: {problem}. Use --resume_from_checkpoint last "
                                        f"to pick the newest complete checkpoint in {output_dir}.")
    return str(value)
