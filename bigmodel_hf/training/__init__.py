"""What the recipes share around a run; the recipes themselves only parse a `RunConfig` and call a run.

A run's settings are checked before anything is built (`config`, `arguments`, `defaults`,
`setting_checks`); what is written is decided before training starts (`rerun`, `runs`), and every
failure of a long run ends in one line naming the checkpoint a rerun continues from (`integrity`,
`guards`, `entry`). `translation` and `text_generation` are the runs (imported on demand: they pull in
model and data code), `back_translation` and `hyperparameter_search` programs built on the translation run.
What an output directory holds and how a trained model decodes are not training's: see
`bigmodel_hf.output_layout` and `bigmodel_hf.decoding`.
"""

from .arguments import (
    CausalLMArguments,
    LoraArguments,
    ModelArguments,
    RunArguments,
    TextDataArguments,
    TokenizerArguments,
    TranslationDataArguments,
)
from .config import RENAMED_KEYS, RunConfig, parse_run_config
from .defaults import LM_DEFAULTS, TRANSLATION_DEFAULTS, environment_defaults
from .setting_checks import ConfigError

__all__ = [
    "LM_DEFAULTS",
    "RENAMED_KEYS",
    "TRANSLATION_DEFAULTS",
    "CausalLMArguments",
    "ConfigError",
    "LoraArguments",
    "ModelArguments",
    "RunArguments",
    "RunConfig",
    "TextDataArguments",
    "TokenizerArguments",
    "TranslationDataArguments",
    "environment_defaults",
    "parse_run_config",
]
