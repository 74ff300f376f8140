"""Checkpoint discovery and weight averaging over real safetensors checkpoints of a tiny tied model."""

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import random_ids, tiny_config

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.training.checkpoints import (
    average_checkpoints,
    average_last_checkpoints,
    list_checkpoints,
    load_weights,
    read_safetensors_weights,
)


def save_checkpoints(root, steps):
    """One tiny model per step, each with different random weights, saved as Trainer would."""
    models = {}
    for step in steps:
        torch.manual_seed(step)
        model = BigModelForSeq2SeqLM(tiny_config("classic"))
        model.save_pretrained(root / f"checkpoint-{step}")
        models[step] = model
    return models


def test_checkpoints_are_listed_in_numeric_step_order(tmp_path):
    for name in ["checkpoint-1000", "checkpoint-200", "checkpoint-30", "runs", "checkpoint-x"]:
        (tmp_path / name).mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-30", "checkpoint-200", "checkpoint-1000"]
    assert list_checkpoints(tmp_path / "missing") == []


def test_average_of_last_n_is_the_elementwise_mean(tmp_path):
    models = save_checkpoints(tmp_path, [10, 20, 30])
    weights, used = average_last_checkpoints(tmp_path, 2)
    assert [p.name for p in used] == ["checkpoint-20", "checkpoint-30"]
    name = "model.encoder.layers.0.self_attn.q_proj.weight"
    expected = (models[20].state_dict()[name] + models[30].state_dict()[name]) / 2
    assert torch.allclose(weights[name], expected, atol=1e-7)
    with pytest.raises(ValueError, match="has 3"):
        average_last_checkpoints(tmp_path, 4)


def test_averaged_weights_load_into_a_tied_model_and_change_its_outputs(tmp_path):
    models = save_checkpoints(tmp_path, [1, 2])
    weights, _ = average_last_checkpoints(tmp_path, 2)
    model = BigModelForSeq2SeqLM(tiny_config("classic"))
    load_weights(model, weights)
    # The tied output projection follows the averaged embeddings (it was stored once).
    shared = (models[1].get_input_embeddings().weight + models[2].get_input_embeddings().weight) / 2
    assert torch.allclose(model.get_output_embeddings().weight, shared, atol=1e-7)
    ids = random_ids(2, 5)
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids).logits
        ref = models[2](input_ids=ids, labels=ids).logits
    assert not torch.allclose(out, ref)


def test_single_checkpoint_average_is_identity_and_keeps_dtype(tmp_path):
    (tmp_path / "checkpoint-5").mkdir()
    save_file({"w": torch.randn(3).to(torch.bfloat16), "step": torch.tensor([7])}, tmp_path / "checkpoint-5" / "model.safetensors")
    weights = average_checkpoints([tmp_path / "checkpoint-5"])
    assert weights["w"].dtype == torch.bfloat16 and weights["step"].tolist() == [7]


def test_sharded_checkpoints_are_read(tmp_path):
    save_checkpoints(tmp_path, [1])
    model = BigModelForSeq2SeqLM(tiny_config("classic"))
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    weights = read_safetensors_weights(tmp_path / "sharded")
    state = model.state_dict()
    assert all(torch.equal(tensor, state[name]) for name, tensor in weights.items())
    assert weights.keys() == read_safetensors_weights(tmp_path / "checkpoint-1").keys()


def test_mismatched_checkpoints_and_foreign_weights_are_rejected(tmp_path):
    save_checkpoints(tmp_path, [1])
    (tmp_path / "checkpoint-2").mkdir()
    save_file({"other": torch.zeros(1)}, tmp_path / "checkpoint-2" / "model.safetensors")
    with pytest.raises(ValueError, match="different weights"):
        average_last_checkpoints(tmp_path, 2)
    with pytest.raises(ValueError, match="not in the model"):
        load_weights(BigModelForSeq2SeqLM(tiny_config("classic")), {"other": torch.zeros(1)})


def test_resume_setting_resolves_to_the_newest_checkpoint_or_a_fresh_start(tmp_path):
    from bigmodel_hf.training.checkpoints import resolve_resume_checkpoint

    assert resolve_resume_checkpoint("last", tmp_path) is None  # nothing yet: start fresh
    for step in (5, 40, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
        save_file({"w": torch.zeros(2)}, tmp_path / f"checkpoint-{step}" / "model.safetensors")
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    assert resolve_resume_checkpoint("last", tmp_path).endswith("checkpoint-100")
    assert resolve_resume_checkpoint(True, tmp_path).endswith("checkpoint-100")
    assert resolve_resume_checkpoint(None, tmp_path) is None and resolve_resume_checkpoint("false", tmp_path) is None
    assert resolve_resume_checkpoint(str(tmp_path / "checkpoint-40"), tmp_path).endswith("checkpoint-40")
    with pytest.raises(FileNotFoundError, match="use 'last'"):
        resolve_resume_checkpoint(str(tmp_path / "checkpoint-7"), tmp_path)
