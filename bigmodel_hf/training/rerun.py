"""Before a run writes anything: is `--output_dir` usable, and may this command continue what it holds?

Rerunning the same command is how an interrupted run continues (`--resume_from_checkpoint last`), so a
rerun first reads what the folder holds and refuses, with one line and nothing written, when continuing
would be wrong: the checkpoint holds another model, or was trained on other data (unless
`--allow_data_change`). A rerun of a run that already finished does nothing (`completed_run`).

The data fingerprint is cheap: the SHA-256 of each data file (cached per size and mtime) or, for data
that is generated or named on the Hub, what identifies it; it is kept beside the checkpoints in
`data_fingerprint.json`.
"""

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import yaml
from safetensors import SafetensorError, safe_open

from ..configuration_bigmodel import BigModelConfig
from ..generated_data import GENERATED_DATASETS
from ..output_layout import OutputLayout
from .checkpoints import RESUME_LAST, list_checkpoints
from .integrity import STATE_FILE
from .setting_checks import ConfigError

# Config fields that the tokenizer, the Trainer (use_cache off while training) or the saving library set.
NOT_THE_MODEL = {"vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
                 "architectures", "dtype", "torch_dtype", "transformers_version", "_name_or_path", "auto_map",
                 "use_cache", "return_dict", "output_attentions", "output_hidden_states"}
# The built-in generated data sets and what decides their content.
GENERATED_DATA = {name: dataset.depends_on for name, dataset in GENERATED_DATASETS.items()}


def check_output_dir(output_dir) -> None:
    """`--output_dir` must be a folder, or creatable in a writable one. Creates and changes nothing."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output_dir {path} is a file, not a folder; give a folder path (it is created if missing).")
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--output_dir {path} cannot be created: {existing} is a file. Give a folder path that is "
                          "not inside a file.")
    problem = None if os.access(existing, os.W_OK | os.X_OK) else "permission denied"
    if problem is None:
        try:  # os.access can say yes where no file can be made (/proc, some network mounts): try one, removed at once
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            problem = error.strerror or str(error)
    if problem:
        where = "" if existing == path.absolute() else f" (in {existing})"
        raise ConfigError(f"--output_dir {path} is not writable{where}: {problem}. Give a folder you can write to.")


def check_same_model(checkpoint: Path, model_args, expected: BigModelConfig | None) -> None:
    """Refuse to resume `checkpoint` into a model of another architecture (before any shape mismatch)."""
    if expected is not None:
        differences = config_differences(checkpoint, expected)
    else:
        differences = shape_differences(checkpoint, model_args.model_name_or_path)
    if differences:
        raise ConfigError(
            f"{checkpoint} holds another model than this run asks for ({'; '.join(differences[:4])}"
            f"{'; ...' if len(differences) > 4 else ''}), so this command cannot continue it. Rerun with the settings in "
            f"{run_folder(checkpoint) / 'run_config.yaml'} to continue it, or give a new --output_dir for this model."
        )


def run_folder(checkpoint: Path) -> Path:
    return checkpoint.parent if checkpoint.name.startswith("checkpoint-") else checkpoint


def config_differences(checkpoint: Path, expected: BigModelConfig) -> list[str]:
    """`field: checkpoint's value, this run's value` for each model field that differs."""
    try:
        saved = json.loads((checkpoint / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as error:
        return [f"its config.json is unreadable ({error})"]
    if not isinstance(saved, dict) or saved.get("model_type") != expected.model_type:
        found = saved.get("model_type") if isinstance(saved, dict) else saved
        return [f"model_type {found!r} there, {expected.model_type!r} here"]
    try:
        held = BigModelConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError) as error:
        return [f"its config.json does not describe a BigModel ({error})"]
    wanted = expected.to_dict()
    differing = [key for key in sorted(held.keys() | wanted.keys())
                 if key not in NOT_THE_MODEL and not key.startswith("_") and held.get(key) != wanted.get(key)]
    # Sizes first (whole numbers: widths, layer and head counts), where the weights' shapes come from.
    differing.sort(key=lambda key: not (type(held.get(key)) is int and type(wanted.get(key)) is int))
    return [f"{key} {held.get(key)!r} there, {wanted.get(key)!r} here" for key in differing]


def weight_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from the safetensors headers of a model folder (nothing is loaded)."""
    shapes = {}
    for file in sorted(folder.glob("model*.safetensors")):
        try:
            with safe_open(file, "pt") as handle:
                shapes.update({name: handle.get_slice(name).get_shape() for name in handle.keys()})
        except (SafetensorError, OSError):
            return {}
    return shapes


def shape_differences(checkpoint: Path, pretrained: str | None) -> list[str]:
    """Fine-tuning: the weights both the checkpoint and the (local) pretrained model hold must have one shape.
    Adapters, converted models and Hub ids share no names or have nothing local: nothing to compare."""
    if not pretrained or not Path(pretrained).is_dir():
        return []
    ours, theirs = weight_shapes(checkpoint), weight_shapes(Path(pretrained))
    return [f"{name} {ours[name]} there, {theirs[name]} here" for name in sorted(ours.keys() & theirs.keys())
            if ours[name] != theirs[name]]


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def data_fingerprint(data, seed: int) -> dict:
    """What decides the run's training data: per split, the content hash of its files (or, for generated or
    Hub data, its name and what its content depends on). File names do not count; contents do."""
    files = {split: getattr(data, f"{split}_file", None) for split in ("train", "validation", "test")}
    if any(files.values()):
        sources = {split: path for split, path in files.items() if path}
    elif generated := GENERATED_DATASETS.get(data.dataset_name):
        return {"dataset": {"name": generated.name, generated.depends_on: generated.content_key(seed)}}
    elif data.dataset_name and Path(data.dataset_name).exists():
        sources = {"dataset": data.dataset_name}
    else:  # a Hub data set: its name (its revision is not known before it is downloaded)
        return {"dataset": {"name": data.dataset_name, "config": data.dataset_config_name}}
    fingerprint = {}
    for split, source in sources.items():
        path = Path(source)
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        if not all(member.is_file() for member in members):
            return {}  # a missing file: the data loader names it
        fingerprint[split] = {"path": str(source), "sha256": hashlib.sha256(
            "".join(f"{m.relative_to(path) if path.is_dir() else ''}:{file_sha256(m)}\n" for m in members).encode()
        ).hexdigest()}
    return fingerprint


def _content(fingerprint: dict) -> dict:
    return {split: {k: v for k, v in entry.items() if k != "path"} for split, entry in fingerprint.items()}


def record_data_fingerprint(output_dir, fingerprint: dict) -> None:
    if fingerprint:
        OutputLayout(output_dir).data_fingerprint.write_text(json.dumps(fingerprint, indent=2) + "\n", "utf-8")


def check_same_data(checkpoint: Path, fingerprint: dict, allow_change: bool) -> None:
    """Refuse to resume `checkpoint` on other training data than it was trained on, unless allowed."""
    recorded_file = OutputLayout(run_folder(checkpoint)).data_fingerprint
    try:
        recorded = json.loads(recorded_file.read_text("utf-8"))
    except (OSError, ValueError):
        return  # a run from before fingerprints were kept, or none recorded: nothing to compare
    if not fingerprint or allow_change or _content(recorded) == _content(fingerprint):
        return
    changed = [split for split in sorted(recorded.keys() | fingerprint.keys())
               if _content(recorded).get(split) != _content(fingerprint).get(split)]
    described = ", ".join(f"{split}: {_describe(recorded.get(split))} then, {_describe(fingerprint.get(split))} now"
                          for split in changed)
    raise ConfigError(
        f"The data differs from what {checkpoint} was trained on ({described}). Resume with the same data, give a "
        "new --output_dir, or pass --allow_data_change to continue training those weights on the new data."
    )


def _describe(entry) -> str:
    if not entry:
        return "none"
    if "sha256" in entry:
        return f"{entry['path']} (sha256 {entry['sha256'][:12]})"
    return ", ".join(f"{key}={value}" for key, value in entry.items())


def checkpoint_state(checkpoint) -> dict:
    """The checkpoint's `trainer_state.json` ({} when unreadable)."""
    try:
        state = json.loads((Path(checkpoint) / STATE_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def trained_to_the_end(state: dict, training_args) -> bool:
    """Did the checkpoint with this state reach the end of this command's run: its `max_steps` (or
    `num_train_epochs`), or a stop by itself (early stopping, time limit) with the same length asked for?"""
    step = state.get("global_step", 0)
    if training_args.max_steps > 0:
        reached = step >= training_args.max_steps
        same_length = state.get("max_steps") == training_args.max_steps
    else:
        reached = (state.get("epoch") or 0) >= training_args.num_train_epochs - 1e-9
        same_length = state.get("num_train_epochs") == training_args.num_train_epochs
    stopped = ((state.get("stateful_callbacks") or {}).get("TrainerControl", {}).get("args", {})
               .get("should_training_stop", False))
    return bool(state) and (reached or (stopped and same_length))


def finished_without_checkpoints(resume: str | None, training_args) -> Path | None:
    """The output directory, when it holds a finished run (model and `run_info.json`) that kept no
    checkpoint (`save_strategy no`) and this command would continue (`last`): the rerun must then ask for
    the same model and data too, or it would train over that run."""
    layout = OutputLayout(training_args.output_dir)
    if resume is not None or str(training_args.resume_from_checkpoint).lower() not in RESUME_LAST:
        return None
    finished = layout.run_info.is_file() and (layout.root / "config.json").is_file()
    return layout.root if finished and not list_checkpoints(layout.root) else None


def completed_run(resume: str | None, training_args) -> str | None:
    """The message for a rerun of a run that already finished, else None.

    Finished means: `run_info.json` (written last, after the results) exists and the checkpoint resumed
    from, the output directory's own, trained to the end (`trained_to_the_end`); without checkpoints, the
    recorded run reached this command's `max_steps` or asked for the same length. A run stopped after its
    last checkpoint but before its results is not finished: its rerun evaluates without training
    (`guards.GuardedTrainerMixin.train`).
    """
    if str(training_args.resume_from_checkpoint).lower() not in RESUME_LAST:
        return None
    output_dir = Path(training_args.output_dir)
    layout = OutputLayout(output_dir)
    if not layout.run_info.is_file():
        return None
    if resume is not None:
        state = checkpoint_state(resume)
        if Path(resume).parent.resolve() != output_dir.resolve() or not trained_to_the_end(state, training_args):
            return None
        step = state["global_step"]
    elif finished_without_checkpoints(resume, training_args) is not None:
        step = json.loads(layout.run_info.read_text("utf-8")).get("global_step", 0)
        try:
            recorded = yaml.safe_load(layout.run_config.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError):
            recorded = {}
        same_length = (recorded.get("max_steps", -1) == training_args.max_steps and (
            training_args.max_steps > 0 or recorded.get("num_train_epochs") == training_args.num_train_epochs))
        if not (0 < training_args.max_steps <= step or same_length):
            return None
    else:
        return None
    return (f"{output_dir} already holds this run, finished at step {step}: results in {layout.eval_results}, "
            f"the model and its card (README.md) in {output_dir}. Nothing was changed. To train further, raise "
            "--max_steps; to train another run, give a new --output_dir.")
