"""Train or fine-tune a translation model.

    python recipes/translate.py                                   # the embedded default run (toy en->es)
    python recipes/translate.py --config recipes/configs/X.yaml --max_steps 2000
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/translate.py [...]

Settings: recipe defaults < YAML file < flags; `--help` lists every flag. See recipes/README.md.
"""

import sys
from pathlib import Path

from bigmodel_hf.data import DataError
from bigmodel_hf.training import ConfigError
from bigmodel_hf.training.guards import CheckpointSaveError, NonFiniteLossError
from bigmodel_hf.training.integrity import IncompleteCheckpointError
from bigmodel_hf.training.translation import parse_translation_config, run_translation

# Errors whose message already names the problem and the fix: printed without a traceback, exit status 1.
CLEAR_ERRORS = (ConfigError, DataError, IncompleteCheckpointError, NonFiniteLossError, CheckpointSaveError)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "translate_toy_en_es.yaml"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # the embedded default run only when called with no arguments at all
        run_config = parse_translation_config(argv, default_config=None if argv else DEFAULT_CONFIG)
        run_translation(run_config)
    except CLEAR_ERRORS as error:
        sys.exit(f"translate.py: {error}")


if __name__ == "__main__":
    main()
