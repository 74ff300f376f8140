"""Which data a run reads: a built-in generated data set, the given files, or a Hub name / local path.

Both recipes resolve `--dataset_name` / `--train_file` here, into the spec `data.load_*_dataset` takes.
"""

from pathlib import Path

from ..generated_data import builtin_name, generated_dataset
from .processes import made_once_everywhere
from .setting_checks import ConfigError


def resolve_data_spec(data, task: str, output_dir, seed: int, write_files: bool = True) -> str | dict[str, str]:
    """{split: file} or a name. A built-in data set is written into `<output_dir>/data` first (by the main
    process: `write_files=False` elsewhere reads what it wrote)."""
    file_splits = [split for split in ("train", "validation", "test") if hasattr(data, f"{split}_file")]
    check_one_source(data)
    if generated := generated_dataset(data.dataset_name, task):
        return generated.files(Path(output_dir) / "data", seed, write=write_files)
    if data.train_file:
        return {split: path for split in file_splits if (path := getattr(data, f"{split}_file"))}
    if data.dataset_name:
        return data.dataset_name
    raise ConfigError(f"Give --dataset_name (a Hub name, a local file or folder, or {builtin_name(task)!r}) "
                      "or --train_file.")


def check_one_source(data) -> None:
    """`--dataset_name` or `--train_file`, not both (before anything, a generated corpus included, is written)."""
    if data.dataset_name and data.train_file:
        others = "/".join(f"--{split}_file" for split in ("validation", "test") if hasattr(data, f"{split}_file"))
        raise ConfigError(f"Give either --dataset_name or --train_file (with {others}), not both.")


def share_generated_data(data, task: str, args) -> None:
    """A built-in data set: written by the global main process, copied to every machine's `<output_dir>/data`
    (`processes.made_once_everywhere`: the machines need not share a disk, and the stdlib corpus follows the
    main process's Python). Nothing for other data."""
    check_one_source(data)
    if generated := generated_dataset(data.dataset_name, task):
        made_once_everywhere(Path(args.output_dir) / "data", lambda folder: generated.files(folder, args.seed), args)
