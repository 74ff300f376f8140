"""What the translation and text-generation recipes share. Recipes stay thin: parse a `RunConfig`, call here.

- `config`, `arguments`, `defaults`, `validation`: the run's settings (defaults < YAML < flags), checked
  at start (renamed/unknown keys, bad values) -> `parse_run_config(argument_types, argv, defaults)`.
- `callbacks` (+ `plotting`): loss/metric PNG, sample outputs at each evaluation, early stopping, the
  wall-clock stop (`max_train_minutes`).
- `checkpoints`: checkpoints in step order, averaging the last N, `--resume_from_checkpoint last`.
- `integrity`, `guards`: a half-written checkpoint is never resumed from; a NaN/inf loss or a failed save
  (disk full) stops the run with the step or checkpoint named, Ctrl-C with the checkpoint a rerun resumes
  from (see docs/bad_inputs.md).
- `rerun`: before anything is written, whether `--output_dir` is usable and whether this command may
  continue what it holds (same model, same data, not already finished).
- `evaluation`: `TranslationMetrics` (BLEU/chrF from generated ids), the capped length-sorted validation
  subset; the LM side uses `bigmodel_hf.metrics.perplexity` (token-weighted, in-process).
- `generation`: batched `translate_texts` / left-padded `continue_texts` from strings.
- `output`, `run_info`: the output directory layout, `eval_results.json`, `run_info.json`.
- `trainers`: `TranslationTrainer` / `CausalLMTrainer` (token budget + exact gathering of metrics across
  processes; the LM one sizes the warmup-stable-decay schedule).
- `runs`: the steps around every run: start (seed, run_config.yaml, resume), the checkpoint's or a newly
  trained tokenizer, a preset config sized to it, finish (eval_results.json, run_info, card, push).
- `lora`: LoRA adapters through peft (explicit target modules), saved as adapters or merged.
- `translation`, `text_generation`: the runs themselves (imported on demand; they pull in model and data code).
- `back_translation`, `hyperparameter_search`: back-translation as one run (reverse model, synthetic
  sources, tagged mix, forward model) and the Optuna search over the translation run (also on demand).
"""

from .arguments import (
    CausalLMArguments,
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
    "ModelArguments",
    "RunArguments",
    "RunConfig",
    "TextDataArguments",
    "TokenizerArguments",
    "TranslationDataArguments",
    "environment_defaults",
    "parse_run_config",
]
