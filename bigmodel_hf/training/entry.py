"""The command-line entry shared by the recipes: parse, run, and turn known errors into one clear line."""

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..data import DataError
from .guards import CheckpointSaveError, NonFiniteLossError
from .integrity import IncompleteCheckpointError
from .validation import ConfigError

# Errors whose message already names the problem and the fix: printed without a traceback, exit status 1.
CLEAR_ERRORS = (ConfigError, DataError, IncompleteCheckpointError, NonFiniteLossError, CheckpointSaveError)


def recipe_main(script: str, parse: Callable, run: Callable, default_config: Path | None,
                argv: Sequence[str] | None = None) -> None:
    """Run a recipe; with no arguments at all, its embedded default run (`default_config`), or, for a
    recipe without one, a one-line request for settings."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv and default_config is None:
        sys.exit(f"{script}: give --config FILE or the settings as flags (--help lists them).")
    try:
        run(parse(argv, default_config=None if argv else default_config))
    except CLEAR_ERRORS as error:
        sys.exit(f"{script}: {error}")
