"""The command-line entry shared by the recipes: parse, run, and turn known errors into one clear line."""

import sys
from collections.abc import Callable, Sequence
from pathlib import Path


from ..data import DataError
from .checkpoints import complete_checkpoints
from .guards import CheckpointSaveError, NonFiniteLossError, TrainingInterrupted
from .integrity import IncompleteCheckpointError
from .setting_checks import ConfigError

# Errors whose message already names the problem and the fix: printed without a traceback, exit status 1.
CLEAR_ERRORS = (ConfigError, DataError, IncompleteCheckpointError, NonFiniteLossError, CheckpointSaveError)
INTERRUPTED = 130  # the shell's status for a process ended by SIGINT (128 + 2)


def recipe_main(script: str, parse: Callable, run: Callable, default_config: Path | None,
                argv: Sequence[str] | None = None) -> None:
    """Run a recipe; with no arguments at all, its embedded default run (`default_config`), or, for a
    recipe without one, a one-line request for settings."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv and default_config is None:
        sys.exit(f"{script}: give --config FILE or the settings as flags (--help lists them).")
    run_config = None
    try:
        run_config = parse(argv, default_config=None if argv else default_config)
        run(run_config)
    except CLEAR_ERRORS as error:
        close_progress_bars()
        sys.exit(f"{script}: {error}")
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line, no traceback
        close_progress_bars()
        print(f"{script}: {interrupted(interrupt, run_config)}", file=sys.stderr)
        sys.exit(INTERRUPTED)


def close_progress_bars() -> None:
    """Ends the bars a stop left open (tqdm leaves the cursor after the bar, without a newline), so the one
    line that follows starts a line of its own rather than the tail of `7/100000 [00:00<...]`."""
    from tqdm import tqdm

    for bar in list(tqdm._instances):
        bar.close()


def interrupted(interrupt: KeyboardInterrupt, run_config) -> str:
    """What a Ctrl-C stopped, and what rerunning the same command does."""
    if isinstance(interrupt, TrainingInterrupted):
        return str(interrupt)
    checkpoints = complete_checkpoints(run_config.training.output_dir) if run_config else []
    then = f"resume from {checkpoints[-1].name}" if checkpoints else "start again"
    return f"interrupted outside training, rerun the same command to {then}"
