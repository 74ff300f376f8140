"""Is a Trainer checkpoint folder complete? A run killed while saving leaves a half-written one behind.

transformers 5.24's `Trainer._save_checkpoint` writes straight into `checkpoint-<step>/` (no temporary
folder, no rename), in this order: the model (safetensors), `training_args.bin`, the optimizer /
scheduler / scaler / RNG states (`torch.save` zip archives), then `trainer_state.json`; only then are
checkpoints beyond `save_total_limit` deleted. So a folder is complete when `trainer_state.json` parses
and names the folder's own step, every safetensors file's header covers the whole file, and every
`.pt`/`.pth` file is a whole zip archive. `guards.GuardedTrainerMixin` removes a stale
`trainer_state.json` before it re-writes a folder, so that file stays the last one written.
"""

import json
import re
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open

STATE_FILE = "trainer_state.json"
_STEP = re.compile(r"^checkpoint-(\d+)$")


class IncompleteCheckpointError(ValueError):
    """A checkpoint named for resuming is half-written or corrupt."""


class MissingCheckpointError(IncompleteCheckpointError, FileNotFoundError):
    """A checkpoint named for resuming does not exist."""


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why `folder` is not a complete checkpoint, or None when it is. Reads headers only, not the weights."""
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE_FILE).read_text("utf-8"))
    except FileNotFoundError:
        return f"it has no {STATE_FILE} (the save did not finish)"
    except (ValueError, OSError) as error:
        return f"its {STATE_FILE} is unreadable ({error})"
    step = _STEP.match(folder.name)
    if step and (not isinstance(state, dict) or state.get("global_step") != int(step.group(1))):
        found = state.get("global_step") if isinstance(state, dict) else state
        return f"its {STATE_FILE} is for step {found!r}, not {step.group(1)}"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text("utf-8"))["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return f"{index.name} is unreadable ({error!r})"
        missing = sorted(name for name in shards if not (folder / name).is_file())
        if missing:
            return f"weight shards {missing} are missing"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "it holds no safetensors weights"
    for file in weights:
        try:
            with safe_open(file, "pt"):
                pass
        except (SafetensorError, OSError) as error:
            return f"{file.name} is truncated or corrupt ({error})"
    for file in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        if not zipfile.is_zipfile(file):
            return f"{file.name} is truncated or corrupt (not a whole torch.save archive)"
    return None
