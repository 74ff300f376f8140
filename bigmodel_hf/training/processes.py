"""Who does what when a run has several processes, on one machine or on several.

- Written once, by the global main process (`args.should_save`, `is_world_process_zero`): the model and
  checkpoints, `run_config.yaml`, `eval_results.json`, `run_info.json`, the cleaning report, samples, plots,
  TensorBoard events, the card and the push.
- Made once but read by every process (the generated toy/stdlib corpus, a tokenizer trained from scratch):
  made by the global main process, then its files travel to every machine over the process group and are
  written there by that machine's local main process (`made_once_everywhere`). Nothing assumes the machines
  share a file system; on a shared one the files are already there, identical, and are left alone.
- Resuming on several machines reads `checkpoint-*` from `output_dir` on every machine: that needs a shared
  file system (or the folder copied to each machine), as for any Trainer run.
"""

import os
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist

from ..decoding import is_sharded


def made_once_everywhere(folder, make: Callable[[Path], object], args):
    """Run `make(folder)` on the global main process, then give every machine the same files under `folder`.

    Returns what `make` returned on the main process and None elsewhere (the others read the files). An
    error in `make` is raised on every process, so none waits forever for files that will not come.
    """
    folder = Path(folder)
    if args.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return make(folder)
    made, payload = None, None
    if args.process_index == 0:
        try:
            made = make(folder)
            payload = {path.relative_to(folder).as_posix(): path.read_bytes()
                       for path in sorted(folder.rglob("*")) if path.is_file()}
        except Exception as error:  # sent to the others, then raised here too
            payload = error
    box = [payload]
    dist.broadcast_object_list(box, src=0)
    payload = box[0]
    if isinstance(payload, Exception):
        raise payload
    if args.local_process_index == 0 and args.process_index != 0:
        for name, content in payload.items():
            write_if_different(folder / name, content)
    dist.barrier()  # every machine's copy is complete before anyone reads it
    return made


def write_if_different(path: Path, content: bytes) -> None:
    """Write atomically (a reader on a shared file system sees the old file or the new one, never half), and
    not at all when the file already holds `content`."""
    if path.is_file() and path.read_bytes() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def sees_main_output_dir(args) -> bool:
    """Whether every process sees the main process's `output_dir`: one machine, or machines sharing a file
    system. Found out (collectively: every process must call it) by a marker file the main process writes
    into the existing `output_dir` and every process looks for."""
    if args.world_size <= 1 or int(os.environ.get("LOCAL_WORLD_SIZE", args.world_size)) == args.world_size:
        return True
    import secrets

    import torch

    box = [secrets.token_hex(8) if args.process_index == 0 else None]
    dist.broadcast_object_list(box, src=0)
    marker = Path(args.output_dir) / f".shared-check-{box[0]}"
    if args.process_index == 0:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    dist.barrier()
    seen = torch.tensor([1 if marker.is_file() else 0])
    dist.all_reduce(seen, op=dist.ReduceOp.MIN)
    dist.barrier()
    if args.process_index == 0:
        marker.unlink()
    return bool(seen.item())


class BestModelOnEveryMachineMixin:
    """Mix in before a `Trainer` class: the best checkpoint reloaded at the end reaches every machine.

    The Trainer reloads it from `output_dir` on every process; a machine that does not share the main
    process's disk finds nothing there and would keep its last weights (transformers 5.25 writes model files
    on global rank 0 only, even with `save_on_each_node`). Machine 0's reloaded weights are broadcast instead.
    A sharded model needs nothing: Accelerate loads it on rank 0 and broadcasts it already.
    """

    def _load_best_model(self):
        super()._load_best_model()
        if self.args.world_size > 1 and not is_sharded(self.model) and not sees_main_output_dir(self.args):
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, src=0)


class DataParallelAfterEvaluationMixin:
    """Mix in before a `Trainer` class: `train()` after an `evaluate`/`predict` still all-reduces gradients.

    An evaluation before the first `train()` (the LM recipe's `perplexity_at_start`) has Accelerate 1.16 prepare
    the model for evaluation only (autocast, compile; no DistributedDataParallel) and mark it prepared; the
    `prepare` in `train()` then returns it unwrapped, and every process steps on its own gradients (the losses
    logged, averaged over processes, hide it; the weights drift apart). That preparation is undone here, so
    training prepares the model as if no evaluation had come first. FSDP and DeepSpeed prepare in full either way.
    """

    def train(self, *args, **kwargs):
        from torch.nn.parallel import DistributedDataParallel

        accelerator = self.accelerator
        if (self.args.world_size > 1 and not self.is_fsdp_enabled and not self.is_deepspeed_enabled
                and not isinstance(self.model_wrapped, DistributedDataParallel)
                and any(model is self.model for model in accelerator._models)):
            accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)  # restores the forward autocast replaced
            self.model.__dict__.pop("_is_accelerate_prepared", None)
            stale = (self.model, self.model_wrapped)
            accelerator._models = [m for m in accelerator._models if not any(m is s for s in stale)]
            self.model_wrapped = self.model  # not the compiled module the evaluation made, if any
        return super().train(*args, **kwargs)
