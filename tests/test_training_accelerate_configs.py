"""The shipped accelerate config files load with accelerate's own reader and name real things."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

import bigmodel_hf.modeling_bigmodel as modeling

CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "accelerate"


@pytest.mark.parametrize(
    "name, distributed_type",
    [("cpu_2proc.yaml", DistributedType.MULTI_GPU), ("multi_gpu.yaml", DistributedType.MULTI_GPU),
     ("fsdp.yaml", DistributedType.FSDP)],
)
def test_config_files_load(name, distributed_type):
    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == distributed_type
    assert config.num_processes == 2 and config.num_machines == 1


def test_cpu_config_asks_for_no_mixed_precision_and_gpu_configs_for_bf16():
    assert load_config_from_file(str(CONFIGS / "cpu_2proc.yaml")).mixed_precision == "no"
    assert load_config_from_file(str(CONFIGS / "multi_gpu.yaml")).mixed_precision == "bf16"


def test_fsdp_wraps_the_layer_classes_each_model_has():
    """No class list in the file: Accelerate wraps each model's `_no_split_modules` that it instantiates, so one
    file serves the encoder-decoder and the decoder-only LM (a list naming BigModelEncoderLayer fails on the LM)."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from tiny_models import tiny_config

    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp
    cases = [(modeling.BigModelForSeq2SeqLM(tiny_config()), {"BigModelEncoderLayer", "BigModelDecoderLayer"}),
             (modeling.BigModelForCausalLM(tiny_config(is_encoder_decoder=False)), {"BigModelDecoderLayer"})]
    for model, expected in cases:
        plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
        plugin.set_auto_wrap_policy(model)
        assert set(plugin.transformer_cls_names_to_wrap) == expected
