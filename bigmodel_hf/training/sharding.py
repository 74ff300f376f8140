"""Sharded training (FSDP2) on CPU processes, exactly as Accelerate's FSDP plugin does it on GPUs.

Accelerate 1.16 turns an FSDP launch into FSDP only for GPU-like process groups (`AcceleratorState.__init__`
switches `MULTI_GPU`/`MULTI_XPU`/... to `FSDP`, never `MULTI_CPU`); CPU processes silently fall back to
DistributedDataParallel. `FsdpOnCpuMixin` switches such a run back to the FSDP state the launcher asked for,
with the plugin built from the same `FSDP_*` variables, so `Accelerator.prepare` shards the model with its
own `fsdp2_prepare_model` (`fully_shard` per `BigModelEncoderLayer`/`BigModelDecoderLayer`, then the root)
and the Trainer saves, checkpoints and resumes through its FSDP code paths, as on GPUs.
"""

import contextlib
import logging
import os

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

from ..decoding import is_sharded

logger = logging.getLogger(__name__)


def fsdp_launched() -> bool:
    """True when `accelerate launch` was given an FSDP config (it exports ACCELERATE_USE_FSDP)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


def shard_tied_embeddings(model, plugin) -> None:
    """Put every module that holds the input-embedding weight into one FSDP2 group, before Accelerate shards.

    Our seq2seq model (like Bart and Marian) ties one weight into four modules: `shared`, the encoder's and the
    decoder's `embed_tokens` and `lm_head`. Accelerate groups the input embedding with the output projection,
    which leaves the encoder's and decoder's copies in the root group, and FSDP2 (torch >= 2.13) refuses a
    parameter that two groups hold. Grouped here, Accelerate skips them (it never re-shards an FSDP module).
    Only the parameter's layout changes; values and the saved state dict keys are the same.
    """
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    weight = getattr(model.get_input_embeddings(), "weight", None)
    holders = [m for m in model.modules() if getattr(m, "weight", None) is weight and not isinstance(m, FSDPModule)]
    if weight is None or len(holders) < 3:  # none, or the input/output pair Accelerate groups itself
        return
    if plugin.cpu_ram_efficient_loading:
        # Accelerate would move the model to `meta` and reload it, which a group sharded already cannot take
        logger.warning("FSDP: fsdp_cpu_ram_efficient_loading is off for a model with tied encoder-decoder "
                       "embeddings (every process loads the model; it is then sharded).")
        plugin.cpu_ram_efficient_loading = False
    fully_shard(holders, reshard_after_forward=False, offload_policy=plugin.cpu_offload,
                mp_policy=plugin.mixed_precision_policy or MixedPrecisionPolicy())


@contextlib.contextmanager
def saved_as_unsharded_class(model):
    """While saving, let FSDP2's generated class (`FSDPBigModelForSeq2SeqLM`, defined in a torch module) show the
    name and module of the class it wraps: `save_pretrained` copies the code files of `type(model).__module__`
    and names the class in `auto_map`, and would otherwise ship torch's `_fsdp_*.py` files instead of ours."""
    cls = type(model)
    wrapped = next((base for base in cls.__mro__[1:] if base.__name__ == cls.__name__.removeprefix("FSDP")), None)
    if wrapped is None:
        yield
        return
    saved = cls.__name__, cls.__qualname__, cls.__module__
    cls.__name__, cls.__qualname__, cls.__module__ = wrapped.__name__, wrapped.__qualname__, wrapped.__module__
    try:
        yield
    finally:
        cls.__name__, cls.__qualname__, cls.__module__ = saved


class ShardedTrainingMixin:
    """Mix in before a `Trainer` class: FSDP2 as Accelerate's plugin does it, on GPUs and on CPU processes.

    - an FSDP launch on CPU processes trains sharded instead of falling back to DDP (see the module docstring);
    - tied encoder-decoder embeddings are sharded as one group first (`shard_tied_embeddings`);
    - checkpoints and the final folder are the normal `save_pretrained` layout (`saved_as_unsharded_class`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.is_fsdp_enabled and self.accelerator.is_fsdp2:
            shard_tied_embeddings(self.model, self.accelerator.state.fsdp_plugin)

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        state = self.accelerator.state
        if not fsdp_launched() or state.distributed_type != DistributedType.MULTI_CPU:
            return
        plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables `accelerate launch` exported
        if state.mixed_precision != "no":
            plugin.set_mixed_precision(state.mixed_precision)
        state.fsdp_plugin = plugin
        state.distributed_type = AcceleratorState._shared_state["distributed_type"] = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        self.is_fsdp_enabled = True
        if state.is_main_process:
            logger.info("FSDP%s on %d CPU processes (gloo)", plugin.fsdp_version, state.num_processes)

    def _save(self, output_dir=None, state_dict=None):
        if not is_sharded(self.model):
            return super()._save(output_dir, state_dict=state_dict)
        if state_dict:  # gathered copies no longer share storage, so save_pretrained would keep every tied one
            tied = getattr(self.model, "all_tied_weights_keys", None) or {}
            state_dict = {name: tensor for name, tensor in state_dict.items() if name not in tied}
        with saved_as_unsharded_class(self.model):
            return super()._save(output_dir, state_dict=state_dict)


class SyncedShardedGenerationMixin:
    """Mix in before `Seq2SeqTrainer`: validation `generate` on a sharded model keeps every process stepping
    until all are done (`synced_gpus`), since each forward gathers parameters from all of them. Ranks hold
    different sentences and would otherwise stop after different numbers of steps and hang."""

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        if is_sharded(self.model):
            gen_kwargs = dict(gen_kwargs or getattr(self, "_gen_kwargs", {}), synced_gpus=True)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)
