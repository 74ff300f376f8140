"""Run `recipes/translate.py` and SIGKILL the process at the point `$CRASH_AT` names (test-only).

    CRASH_AT=step:5            after optimizer step 5 (mid-epoch, between checkpoints)
    CRASH_AT=save_weights:12   while saving checkpoint-12: its model.safetensors is half-written
    CRASH_AT=save_state:12     while saving checkpoint-12: weights and optimizer written, trainer_state.json half

The kill is a real `SIGKILL` sent by the process to itself: no Python cleanup, no `finally`, no flush.
Used by tests/test_crash_safety.py, which reruns the same command and compares with an uninterrupted run.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

import transformers.modeling_utils
from transformers import TrainerCallback, TrainerState

import bigmodel_hf.training.translation as translation

KIND, _, STEP = os.environ.get("CRASH_AT", "").partition(":")
FOLDER = f"checkpoint-{STEP}"


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def half_written(path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


class KillAtStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(STEP):
            die()


if KIND == "step":
    build_callbacks = translation.build_callbacks
    translation.build_callbacks = lambda *a, **k: build_callbacks(*a, **k) + [KillAtStep()]
elif KIND == "save_weights":
    save_file = transformers.modeling_utils.safe_save_file

    def save_then_die(tensors, filename, *args, **kwargs):
        save_file(tensors, filename, *args, **kwargs)
        if Path(filename).parent.name == FOLDER:
            half_written(filename)
            die()

    transformers.modeling_utils.safe_save_file = save_then_die
elif KIND == "save_state":
    save_to_json = TrainerState.save_to_json

    def save_state_then_die(self, json_path):
        save_to_json(self, json_path)
        if Path(json_path).parent.name == FOLDER:
            half_written(json_path)
            die()

    TrainerState.save_to_json = save_state_then_die
elif KIND:
    sys.exit(f"unknown CRASH_AT={os.environ['CRASH_AT']!r}")

if __name__ == "__main__":
    sys.argv = [str(Path(__file__).resolve().parents[1] / "recipes" / "translate.py")] + sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
