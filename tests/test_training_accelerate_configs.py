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


def test_fsdp_wraps_layer_classes_that_exist():
    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    for class_name in fsdp["fsdp_transformer_layer_cls_to_wrap"].split(","):
        assert hasattr(modeling, class_name), class_name
    assert set(fsdp["fsdp_transformer_layer_cls_to_wrap"].split(",")) <= set(
        modeling.BigModelPreTrainedModel._no_split_modules)
