"""Opening a saved model that a user names: check the name before transformers does, never run code that
ships with the model unless asked, read only the weight files the model says it has, and the source prefix
it was trained with.

Every load in the package passes `trust_remote_code` explicitly (False unless the user gave the flag): with
None, transformers asks `[y/N]` on stdin, and a piped `y` would run a model folder's own Python files.
"""

import json
import re
from contextlib import contextmanager
from pathlib import Path

import yaml

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
EXPECTED = ("a model folder (config.json and model.safetensors, as save_pretrained writes them) or a Hub id "
            "(user/name)")
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


class RemoteCodeRefused(ValueError):
    """The model ships Python code of its own and the user did not allow running it."""


def check_model_location(name_or_path) -> None:
    """Raise ValueError (one line: what was given, what was expected) unless `name_or_path` can be a model:
    a folder holding config.json, or a name shaped like a Hub id that is no local file."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_file():
        raise ValueError(f"{name} is a file; expected {EXPECTED}. Give the folder that holds it.")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{name} is a folder without config.json; expected {EXPECTED}.")
        return
    if name.startswith(("/", ".", "~")) or "\\" in name or not HUB_ID.match(name):
        raise ValueError(f"{name}: no such folder, and not a Hub id; expected {EXPECTED}.")


@contextmanager
def one_line_load_errors(name_or_path):
    """Turn transformers' multi-line errors while loading `name_or_path` into one line that says what to do:
    the "contains custom code" refusal, and a Hub id that could not be fetched."""
    try:
        yield
    except OSError as error:
        if Path(str(name_or_path)).expanduser().exists():
            raise
        first = str(error).strip().split("\n")[0]
        raise OSError(f"{name_or_path}: no such local folder, and it could not be loaded as a Hub id ({first}); "
                      f"expected {EXPECTED}.") from None
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise RemoteCodeRefused(
            f"{name_or_path} ships Python code of its own (config.json's auto_map), which is not run unless you "
            "pass --trust_remote_code (trust_remote_code=True); read its .py files first, or use a model that "
            "transformers or bigmodel_hf implements."
        ) from None


def weight_files(folder) -> list[Path]:
    """The safetensors files a saved model consists of: the shards its index lists, else model.safetensors.

    Any other `*.safetensors` in the folder (a stray copy, a file with an odd name) is not the model's."""
    folder = Path(folder)
    index = folder / WEIGHTS_INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{index}: not a safetensors index ({error!r}); save the model again with "
                             "save_pretrained.") from None
        return [folder / name for name in names]
    return [folder / WEIGHTS] if (folder / WEIGHTS).is_file() else []


def safetensors_shapes(path) -> dict[str, list[int]]:
    """Tensor name -> shape of a safetensors file, from its header; ValueError naming the file if unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            return {name: list(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except Exception as error:  # SafetensorError, OSError: a truncated or foreign file
        raise ValueError(f"{path}: not a readable safetensors file ({' '.join(str(error).split())}); save the "
                         "model again with save_pretrained or remove the file.") from None


# ---------------------------------------------------------------- the source prefix


def _task_key(source_lang: str | None, target_lang: str | None) -> str:
    return f"translation_{source_lang or 'src'}_to_{target_lang or 'tgt'}"


def record_source_prefix(config, prefix: str | None, source_lang: str | None, target_lang: str | None) -> None:
    """Store the prefix where T5-style checkpoints keep it (config.json's `task_specific_params`), so a
    user of transformers alone finds it next to the weights. Without a prefix, a prefix the config
    carried (a checkpoint fine-tuned here without one) is dropped: it no longer describes the inputs."""
    params = {key: value for key, value in (getattr(config, "task_specific_params", None) or {}).items()
              if not str(key).startswith("translation")}
    if prefix:
        params[_task_key(source_lang, target_lang)] = {"prefix": prefix}
    if params or getattr(config, "task_specific_params", None) is not None:
        config.task_specific_params = params or None


def recorded_source_prefix(config) -> str | None:
    """The prefix `record_source_prefix` stored (the only translation entry's), or None."""
    params = getattr(config, "task_specific_params", None) or {}
    prefixes = [value["prefix"] for key, value in params.items() if str(key).startswith("translation")
                and isinstance(value, dict) and isinstance(value.get("prefix"), str)]
    return prefixes[0] if len(prefixes) == 1 else None


def source_prefix_of(config, name_or_path) -> str:
    """What every source gets put before it: the prefix in the model's config, else (runs saved before
    it was recorded there) the `source_prefix` of the folder's run_config.yaml, else nothing."""
    prefix = recorded_source_prefix(config)
    if prefix is not None:
        return prefix
    prefix = read_run_config(Path(str(name_or_path)) / "run_config.yaml").get("source_prefix")
    return prefix if isinstance(prefix, str) else ""


def read_run_config(path) -> dict:
    """A run's run_config.yaml ({} when absent); ValueError naming the file when it is not a YAML mapping."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        values = yaml.safe_load(path.read_text("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(error).split())}); fix or delete it.") from None
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"{path}: holds a YAML {type(values).__name__}, expected a mapping of settings; fix or "
                         "delete it.")
    return values or {}
