"""The private transformers and Accelerate behaviour our Trainer mixins and `precision.py` rely on, pinned.

Each mixin overrides or calls a private method because no public hook does the job in the installed
versions (the reasons are in the mixins' docstrings). An upgrade that renames one, changes what it takes,
or stops calling it would otherwise fail silently (a guard that never fires, a column quietly dropped, BLEU
over duplicated sentences); here it fails by name.
"""

import inspect

import pytest
import transformers.trainer as trainer_module
import transformers.trainer_seq2seq as seq2seq_module
from accelerate import Accelerator
from accelerate.data_loader import BatchSamplerShard
from tiny_models import tiny_config
from transformers import Trainer

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.training.guards import GuardedTrainerMixin
from bigmodel_hf.training.hyperparameter_search import SearchTrainer
from bigmodel_hf.training.processes import BestModelOnEveryMachineMixin
from bigmodel_hf.training.sharding import ShardedTrainingMixin
from bigmodel_hf.training.trainers import KeepColumnsMixin, TokenBudgetTrainerMixin

TRAINER_SOURCE = inspect.getsource(trainer_module)

# (private Trainer method, the parameters we pass or accept, who relies on it, must Trainer itself call it?)
PRIVATE_METHODS = [
    ("_get_grad_norm", ["model", "grad_norm"], GuardedTrainerMixin, True),  # the non-finite gradient stop
    ("_save_checkpoint", ["model", "trial"], GuardedTrainerMixin, True),  # the disk-full stop, fsync
    ("_get_output_dir", ["trial"], GuardedTrainerMixin, False),  # where _save_checkpoint writes
    ("_load_from_checkpoint", ["resume_from_checkpoint"], GuardedTrainerMixin, False),  # finished-run reload
    ("_load_best_model", [], GuardedTrainerMixin, False),
    ("_set_signature_columns_if_needed", [], KeepColumnsMixin, True),  # extra columns kept for BPE-dropout
    ("_remove_unused_columns", ["dataset", "description"], TokenBudgetTrainerMixin, False),
    ("_hp_search_setup", ["trial"], SearchTrainer, True),  # per-trial preset / dropout / token budget
    ("_save", ["output_dir", "state_dict"], ShardedTrainingMixin, True),  # FSDP2 folders saved as the usual ones
    ("_load_best_model", [], BestModelOnEveryMachineMixin, True),  # best weights broadcast to other machines
]


@pytest.mark.parametrize("name, parameters, user, called", PRIVATE_METHODS, ids=[m[0] for m in PRIVATE_METHODS])
def test_private_trainer_methods_we_rely_on_are_still_there(name, parameters, user, called):
    method = getattr(Trainer, name, None)
    assert method is not None, f"transformers removed Trainer.{name}, which {user.__name__} relies on"
    have = list(inspect.signature(method).parameters)[1:]
    missing = [p for p in parameters if p not in have]
    assert not missing, f"Trainer.{name} no longer takes {missing} (now {have}); update {user.__name__}"
    if called:
        assert f"self.{name}(" in TRAINER_SOURCE, f"Trainer no longer calls {name}: {user.__name__}'s override is dead"


def test_the_signature_columns_attribute_is_what_the_trainer_filters_by():
    source = inspect.getsource(Trainer._remove_unused_columns)
    assert "self._signature_columns" in source, "KeepColumnsMixin extends _signature_columns; Trainer stopped reading it"


def test_seq2seq_evaluation_still_swaps_the_gather_function():
    """ExactGatherMixin exists because Seq2SeqTrainer.evaluate/predict assign `accelerator.gather` (which keeps
    the samples repeated to fill the last batch); the evaluation loop must still gather through the attribute."""
    assert "self.gather_function = " in inspect.getsource(seq2seq_module.Seq2SeqTrainer.evaluate)
    assert "self.gather_function(" in TRAINER_SOURCE


def test_accelerates_batch_sampler_shard_has_the_fields_the_token_budget_loader_resets():
    shard = BatchSamplerShard([[0, 1], [2, 3]], num_processes=2, process_index=1)
    assert shard.batch_sampler == [[0, 1], [2, 3]] and (shard.num_processes, shard.process_index) == (2, 1)
    shard.num_processes, shard.process_index = 1, 0  # what TokenBudgetTrainerMixin does: a pass-through
    assert list(shard) == [[0, 1], [2, 3]]


def test_accelerate_still_wraps_forward_as_an_instance_attribute():
    """precision.float32_forward pops the `forward` instance attribute Accelerate sets (marked by
    `_original_forward`) to run evaluation without autocast."""
    model = BigModelForSeq2SeqLM(tiny_config("modern", True))
    Accelerator(mixed_precision="bf16", cpu=True).prepare(model)
    assert "_original_forward" in model.__dict__, "Accelerate no longer marks its forward wrapper: see precision.py"
    assert "forward" in model.__dict__, "Accelerate no longer sets forward on the instance: see precision.py"
    assert model.__dict__["forward"] is not type(model).forward
    del model.__dict__["forward"]
    assert model.forward.__func__ is type(model).forward  # popping it exposes the class's own forward
