"""Which device inference runs on: where Accelerate would put a training process, unless `--device` says.

`Translator`, the interactive engine and the CLI share this choice, so a model trained on a device is used
on the same one: the local GPU of a launched process (`cuda:LOCAL_RANK`), else the accelerator torch sees
(CUDA, MPS, XPU, ...), CPU when there is none or when `ACCELERATE_USE_CPU=1` asks for it.
"""

import torch


def default_device() -> torch.device:
    """The device of Accelerate's process state (`PartialState().device`), with ACCELERATE_USE_CPU read as
    `Accelerator` reads it (PartialState alone does not)."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).device


def parse_device(device: str | torch.device | None) -> torch.device:
    """`device` as a torch.device (`default_device()` when None); ValueError for a name torch does not know
    or a device this machine lacks."""
    if device is None:
        return default_device()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device!r} is not a device name; use cpu, cuda, cuda:1 or mps.") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(parsed.type, True):
        raise ValueError(f"--device {device!r}: this machine has no {parsed.type} device; use cpu or leave "
                         "--device unset.")
    return parsed
