"""Run `recipes/translate.py` (or `$SYNC_PROBE_RECIPE`, e.g. generate_text.py) under a launcher with one extra callback that records, per rank, the first
training batch and a checksum of the weights after the last optimizer step, taken before the end of training
reloads the best checkpoint (that reload gives every rank rank 0's weights, whatever they trained to)
(rank 0 writes `<output_dir>/sync_probe.json`).

Used by tests/test_translate_recipe.py to show that 2 launched processes really train as one job:
different data on each rank, identical weights at the end (gradients were all-reduced).
"""

import copy
import json
import os
import runpy
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import TrainerCallback

import bigmodel_hf.training.text_generation as text_generation
import bigmodel_hf.training.translation as translation


class SyncProbe(TrainerCallback):
    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if train_dataloader.batch_sampler is not None:
            self.first_batch = [int(i) for i in next(iter(train_dataloader.batch_sampler))]
        else:  # a stream of whole batches (`--streaming`): the first one's token ids, read from a copy
            batch = next(iter(copy.deepcopy(train_dataloader.dataset)))
            self.first_batch = [tuple(example["input_ids"]) for example in batch]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.checksum = float(sum(p.detach().double().sum() for p in model.parameters()))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        mine = {"first_batch": self.first_batch, "checksum": self.checksum}
        ranks = [None] * dist.get_world_size() if dist.is_initialized() else [mine]
        if dist.is_initialized():
            dist.all_gather_object(ranks, mine)
        if state.is_world_process_zero:
            Path(args.output_dir, "sync_probe.json").write_text(json.dumps({"ranks": ranks}))


build_callbacks = translation.build_callbacks
for recipe_module in (translation, text_generation):
    recipe_module.build_callbacks = lambda *a, **k: build_callbacks(*a, **k) + [SyncProbe()]

if __name__ == "__main__":
    torch.manual_seed(0)
    sys.argv = [str(Path(__file__).resolve().parents[1] / "recipes" / os.environ.get("SYNC_PROBE_RECIPE", "translate.py"))] + sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
