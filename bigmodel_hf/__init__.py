"""bigmodel_hf: the BigModel Transformer as first-class transformers models, plus training recipes.

Importing the package registers the model with the Auto classes, so `AutoConfig`, `AutoModel`,
`AutoModelForSeq2SeqLM` and `AutoModelForCausalLM` load BigModel checkpoints from local folders. The
`register_for_auto_class` calls make `save_pretrained` write an `auto_map` and the code files, so that
machines without this package load the same checkpoints with `trust_remote_code=True`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from .configuration_bigmodel import PRESETS, BigModelConfig
from .modeling_bigmodel import (
    BigModelDecoder,
    BigModelEncoder,
    BigModelForCausalLM,
    BigModelForSeq2SeqLM,
    BigModelModel,
    BigModelPreTrainedModel,
)

__version__ = "0.1.0"

AutoConfig.register(BigModelConfig.model_type, BigModelConfig, exist_ok=True)
AutoModel.register(BigModelConfig, BigModelModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(BigModelConfig, BigModelForSeq2SeqLM, exist_ok=True)
AutoModelForCausalLM.register(BigModelConfig, BigModelForCausalLM, exist_ok=True)

BigModelConfig.register_for_auto_class()
BigModelModel.register_for_auto_class("AutoModel")
BigModelForSeq2SeqLM.register_for_auto_class("AutoModelForSeq2SeqLM")
BigModelForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "PRESETS",
    "BigModelConfig",
    "BigModelPreTrainedModel",
    "BigModelEncoder",
    "BigModelDecoder",
    "BigModelModel",
    "BigModelForSeq2SeqLM",
    "BigModelForCausalLM",
]
