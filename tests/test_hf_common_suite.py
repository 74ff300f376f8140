"""transformers' own common model tests (ModelTesterMixin, ConfigTester) of the installed version, run on
both BigModel heads: the checks every model inside the library passes.

The suite's files come from transformers' PyPI sdist via `python tests/fetch_transformers_tests.py` (CI
runs it). Without them this module is skipped, and says so.
"""

import sys
import unittest

import pytest

from bigmodel_hf import BigModelConfig, BigModelForCausalLM, BigModelForSeq2SeqLM, BigModelModel
from fetch_transformers_tests import SUITE_DIR
from tiny_models import MODERN

if not (SUITE_DIR / "hf_tests" / "test_modeling_common.py").exists():
    pytest.skip(
        f"transformers' common tests are not in {SUITE_DIR}; run `python tests/fetch_transformers_tests.py`",
        allow_module_level=True,
    )
sys.path.insert(0, str(SUITE_DIR))

from hf_tests.generation.test_utils import GenerationTesterMixin  # noqa: E402
from hf_tests.test_configuration_common import ConfigTester  # noqa: E402
from hf_tests.test_modeling_common import ModelTesterMixin, ids_tensor  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402

# The mixins decide by class name whether a model is a base model, a causal LM or a seq2seq LM
# (labels, training tests, the double-shift check); Auto registration does not fill these tables.
modeling_auto.MODEL_MAPPING_NAMES.setdefault("bigmodel", "BigModelModel")
modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault("bigmodel", "BigModelForCausalLM")
modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES.setdefault("bigmodel", "BigModelForSeq2SeqLM")

TINY = dict(
    vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, num_attention_heads=4, ffn_dim=37,
    max_position_embeddings=64, dropout=0.1, attention_dropout=0.1, pad_token_id=1, bos_token_id=0,
    eos_token_id=2, decoder_start_token_id=0,
)


class BigModelTester:
    batch_size = 13
    seq_length = 7
    is_training = True
    vocab_size = TINY["vocab_size"]
    hidden_size = TINY["d_model"]
    num_hidden_layers = TINY["decoder_layers"]
    num_attention_heads = TINY["num_attention_heads"]

    def __init__(self, parent, is_encoder_decoder: bool, **overrides):
        self.parent = parent
        self.is_encoder_decoder = is_encoder_decoder
        self.overrides = overrides
        self.encoder_seq_length = self.decoder_seq_length = self.seq_length

    def get_config(self) -> BigModelConfig:
        return BigModelConfig(**{**TINY, **self.overrides, "is_encoder_decoder": self.is_encoder_decoder})

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        # ids >= 3 avoid the special tokens; sources end with EOS.
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
        input_ids[:, -1] = config.eos_token_id
        inputs = {"input_ids": input_ids, "attention_mask": input_ids.ne(config.pad_token_id)}
        if self.is_encoder_decoder:
            decoder_input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
            inputs["decoder_input_ids"] = decoder_input_ids
            inputs["decoder_attention_mask"] = decoder_input_ids.ne(config.pad_token_id)
        return config, inputs


def skip_rope_scaling_tests(reason: str):
    """Mark the suite's parameterised RoPE-scaling tests of one test class as skipped, with the reason."""

    def decorate(cls):
        for name in dir(cls):
            if name.startswith("test_model_rope_scaling_from_config"):
                setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
        return cls

    return decorate


NO_ROPE = "this configuration has no rotary positions (sinusoidal/learned), so RoPE scaling cannot change it"


class _BigModelSuite(ModelTesterMixin, GenerationTesterMixin):
    test_torch_exportable = False  # see hf_shims/exporters: the export mixin is not in transformers' sdist
    overrides: dict = {}

    def setUp(self):
        self.model_tester = BigModelTester(self, self.is_encoder_decoder, **self.overrides)
        self.config_tester = ConfigTester(self, config_class=BigModelConfig, **TINY)

    def test_config(self):
        self.config_tester.run_common_tests()


@skip_rope_scaling_tests(NO_ROPE)
class BigModelSeq2SeqClassicTest(_BigModelSuite, unittest.TestCase):
    """Vaswani et al.: post-norm LayerNorm, sinusoidal positions, ReLU."""

    is_encoder_decoder = True
    all_model_classes = (BigModelModel, BigModelForSeq2SeqLM)


@skip_rope_scaling_tests(
    "for a flat encoder-decoder config the test edits the copy returned by get_text_config(decoder=True), "
    "so the model never sees the scaled RoPE; RoPE scaling is covered by BigModelCausalLMTest"
)
class BigModelSeq2SeqModernTest(_BigModelSuite, unittest.TestCase):
    """Pre-norm RMSNorm, rotary positions, SwiGLU, grouped-query attention."""

    is_encoder_decoder = True
    all_model_classes = (BigModelModel, BigModelForSeq2SeqLM)
    overrides = MODERN


class BigModelCausalLMTest(_BigModelSuite, unittest.TestCase):
    is_encoder_decoder = False
    all_model_classes = (BigModelModel, BigModelForCausalLM)
    overrides = MODERN


@skip_rope_scaling_tests(NO_ROPE)
class BigModelCausalLMLearnedPositionsTest(_BigModelSuite, unittest.TestCase):
    is_encoder_decoder = False
    all_model_classes = (BigModelModel, BigModelForCausalLM)
    overrides = dict(position_embedding="learned", activation="gelu")
