"""What the translation and text-generation recipes share: configuration, Trainer callbacks, checkpoints,
and the output directory layout. Recipes stay thin: parse a `RunConfig`, then call into here.
"""

from .arguments import ModelArguments, RunArguments, TextDataArguments, TokenizerArguments, TranslationDataArguments
from .config import RENAMED_KEYS, RunConfig, parse_run_config
from .defaults import LM_DEFAULTS, TRANSLATION_DEFAULTS, environment_defaults
from .validation import ConfigError

__all__ = [
    "LM_DEFAULTS",
    "RENAMED_KEYS",
    "TRANSLATION_DEFAULTS",
    "ConfigError",
    "ModelArguments",
    "RunArguments",
    "RunConfig",
    "TextDataArguments",
    "TokenizerArguments",
    "TranslationDataArguments",
    "environment_defaults",
    "parse_run_config",
]
