"""Push a run's output directory to the Hugging Face Hub: what someone else needs to load it, nothing more.

    push_output_dir("outputs/translate_toy_en_es", "alice/bigmodel-en-es")

What is pushed (`plan_upload` lists it without contacting the Hub):
- the model: `config.json` (with `auto_map`), the safetensors weights, the code files `auto_map` names,
  `generation_config.json`, and the tokenizer files;
- the card `README.md` (rebuilt for `repo_id`), `training_curves.png`, `eval_results.json`, and
  `run_config.yaml` with local paths reduced to their last component;
- only when asked: TensorBoard logs (`runs/`), and the `checkpoint-*` folders (model, tokenizer,
  `trainer_state.json`), with their optimizer, scheduler and RNG states only under
  `include_optimizer_states`. The pickled `training_args.bin` is never pushed (resuming does not read it).

Everything else in the folder (data copies, predictions, samples, cleaning report) stays local. Before
anything is sent, every file is scanned for the user's Hugging Face tokens and this machine's absolute
paths, and checked to be no secrets file (`.env`, keys, credentials) and no link out of the folder; a hit
refuses the push and names the file.
"""

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from huggingface_hub import CommitOperationAdd, HfApi

from .cards import build_model_card, read_json_object, shareable_run_config, write_model_card
from .pretrained import WEIGHTS_INDEX, read_run_config, safetensors_shapes, weight_files
from .redaction import find_leaks, find_leaks_in_file, known_tokens, local_path_prefixes, redact_local_paths
from .output_layout import OutputLayout

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "vocab.txt", "merges.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja",
    "chat_template.json",
)
MODEL_FILES = ("config.json", "generation_config.json", WEIGHTS_INDEX)  # + the weight files (pretrained.weight_files)
OPTIMIZER_STATE_FILES = ("optimizer.*", "scheduler.*", "scaler.*", "rng_state*.pth")
# Names of files that hold secrets; one among the files to push (e.g. under runs/) refuses the push.
SECRET_FILES = (".env", ".env.*", "*.env", ".netrc", ".git-credentials", ".pypirc", "*.pem", "*.key", "id_rsa*",
                "id_ed25519*", "token", "*.token", "stored_tokens", "*credentials*", "*secret*")


class UnsafeUploadError(ValueError):
    """A file to push holds an access token or a local path."""


@dataclass(frozen=True)
class UploadFile:
    """One file of the push: its path in the repository and its content (a local file, or bytes rewritten here)."""

    path_in_repo: str
    source: Path | bytes

    def read(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else self.source.read_bytes()


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def code_files(folder: Path) -> list[str]:
    """The `.py` files that `config.json`'s `auto_map` points to (`modeling_bigmodel.BigModel...`)."""
    config = read_json_object(folder / "config.json")
    modules = {ref.split("--")[-1].rsplit(".", 1)[0] for ref in (config.get("auto_map") or {}).values()
               if isinstance(ref, str)}
    missing = sorted(m for m in modules if not (folder / f"{m}.py").is_file())
    if missing:
        raise FileNotFoundError(f"{folder}/config.json's auto_map names {', '.join(m + '.py' for m in missing)}, "
                                "which the folder lacks; save the model with save_pretrained to write the code files.")
    if not modules and config.get("model_type") == "bigmodel":
        raise ValueError(f"{folder}/config.json has no auto_map, so the model could not load without bigmodel_hf "
                         "installed; save it with a current bigmodel_hf (save_pretrained writes auto_map).")
    return sorted(f"{m}.py" for m in modules)  # none for a model transformers itself implements (e.g. Marian)


def model_files(folder: Path, prefix: str = "") -> list[UploadFile]:
    """Weights, configs, code and tokenizer of a saved model folder (the output dir or a checkpoint)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    weights = weight_files(folder)
    if "config.json" not in names or not weights:
        raise FileNotFoundError(f"{folder} has no config.json and safetensors weights: not a saved model.")
    for path in weights:  # a missing shard or a truncated file: one line naming it, before anything is sent
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {WEIGHTS_INDEX} but missing; save the model again.")
        safetensors_shapes(path)
    chosen = ([n for n in names if _matches(n, MODEL_FILES) or n in TOKENIZER_FILES] + [p.name for p in weights]
              + code_files(folder))
    return [UploadFile(prefix + name, folder / name) for name in sorted(set(chosen))]


def _tree(folder: Path, prefix: str) -> list[UploadFile]:
    return [UploadFile(prefix + path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*"))
            if path.is_file()]


def checkpoint_files(checkpoint: Path, optimizer_states: bool) -> list[UploadFile]:
    """A Trainer checkpoint: the model, `trainer_state.json` (paths redacted), optionally optimizer states."""
    prefix = checkpoint.name + "/"
    files = model_files(checkpoint, prefix)
    state = checkpoint / "trainer_state.json"
    if state.is_file():  # best_model_checkpoint is an absolute path when output_dir was
        redacted = redact_local_paths(json.loads(state.read_text("utf-8")), local_path_prefixes(checkpoint.parent))
        files.append(UploadFile(prefix + state.name, (json.dumps(redacted, indent=2) + "\n").encode()))
    if optimizer_states:
        files += [UploadFile(prefix + path.name, path) for path in sorted(checkpoint.iterdir())
                  if path.is_file() and _matches(path.name, OPTIMIZER_STATE_FILES)]
    return files


def plan_upload(
    output_dir: str | Path,
    *,
    include_logs: bool = False,
    include_checkpoints: bool = False,
    include_optimizer_states: bool = False,
) -> list[UploadFile]:
    """Every file a push of `output_dir` sends, in repository order. Contacts nothing."""
    layout = OutputLayout(output_dir)
    root = layout.root
    files = model_files(root)
    if not any(f.path_in_repo in ("tokenizer.json", "tokenizer_config.json") for f in files):
        raise FileNotFoundError(f"{root} has no tokenizer files; nobody could use the model. Save the tokenizer "
                                "into it (tokenizer.save_pretrained) first.")
    for path in (root / "README.md", layout.training_curves, layout.eval_results):
        if path.is_file():
            files.append(UploadFile(path.name, path))
    if layout.run_config.is_file():
        values = shareable_run_config(read_run_config(layout.run_config), root)
        header = "# Resolved run configuration; local paths reduced to their last component, push settings dropped.\n"
        files.append(UploadFile(layout.run_config.name,
                                (header + yaml.safe_dump(values, sort_keys=True, allow_unicode=True)).encode()))
    if include_logs and layout.tensorboard.is_dir():
        files += _tree(layout.tensorboard, layout.tensorboard.name + "/")
    if include_checkpoints or include_optimizer_states:
        for checkpoint in sorted(root.glob("checkpoint-*")):
            if checkpoint.is_dir():
                files += checkpoint_files(checkpoint, include_optimizer_states)
    return files


def upload_problems(files: list[UploadFile], output_dir: str | Path, token: str | None = None) -> dict[str, list[str]]:
    """Path in repo -> why the push refuses that file: it holds a Hugging Face token or an absolute path of
    this machine (in its content or its name), is named like a secrets file (`.env`, keys, credentials), or
    is a link to a file outside `output_dir`. Empty when every file may go."""
    tokens, prefixes = known_tokens(token), local_path_prefixes(output_dir)
    root = Path(output_dir).resolve()
    problems: dict[str, list[str]] = {}
    for file in files:
        found = []
        if _matches(Path(file.path_in_repo).name.lower(), SECRET_FILES):
            found.append("a secrets file, by its name (.env, keys, credentials)")
        found += [f"{leak} in its name" for leak in find_leaks(file.path_in_repo.encode(), tokens, prefixes)]
        if isinstance(file.source, bytes):
            found += find_leaks(file.source, tokens, prefixes)
        elif not file.source.resolve().is_relative_to(root):
            found.append(f"a link to {file.source.resolve()}, outside the output directory")
        else:
            found += find_leaks_in_file(file.source, tokens, prefixes)
        if found:
            problems[file.path_in_repo] = found
    return problems


def check_upload(files: list[UploadFile], output_dir: str | Path, token: str | None = None) -> None:
    """Raise `UnsafeUploadError` naming each file `upload_problems` finds."""
    problems = [f"{path}: {problem}" for path, found in upload_problems(files, output_dir, token).items()
                for problem in found]
    if problems:
        hint = ("\nTensorBoard logs record the output_dir as it was given: runs launched with a relative "
                "--output_dir have no local path in them." if any(p.startswith("runs/") for p in problems) else "")
        raise UnsafeUploadError("Refusing to push; these files would publish private data:\n  " + "\n  ".join(problems)
                                + "\nRemove it from those files (or leave them out) and retry." + hint)


def with_rebuilt_card(files: list[UploadFile], output_dir: str | Path, **card_options) -> list[UploadFile]:
    """`files` with README.md replaced by the card a push would write (built in memory; nothing written)."""
    card = str(build_model_card(output_dir, **card_options)).encode()
    return [UploadFile("README.md", card)] + [file for file in files if file.path_in_repo != "README.md"]


def push_output_dir(
    output_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    include_logs: bool = False,
    include_checkpoints: bool = False,
    include_optimizer_states: bool = False,
    rebuild_card: bool = True,
    license: str = "apache-2.0",
    base_model: str | None = None,
    language: list[str] | None = None,
    api: HfApi | None = None,
) -> str:
    """Push `output_dir` to the Hub model repo `repo_id` (created if missing) in one commit; return its URL.

    `rebuild_card` (re)writes `<output_dir>/README.md` for `repo_id` first; False pushes the README.md
    already there (one is written if there is none); `license`, `base_model` and `language` go to the card
    (see `cards.build_model_card`). `token` defaults to `HF_TOKEN` / the stored login, as in `huggingface_hub`.
    """
    if rebuild_card or not (Path(output_dir) / "README.md").is_file():
        write_model_card(output_dir, repo_id=repo_id, license=license, base_model=base_model, language=language)
    files = plan_upload(output_dir, include_logs=include_logs, include_checkpoints=include_checkpoints,
                        include_optimizer_states=include_optimizer_states)
    check_upload(files, output_dir, token)
    api = api or HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo.repo_id, branch=revision, exist_ok=True, repo_type="model")
    operations = [CommitOperationAdd(path_in_repo=f.path_in_repo,
                                     path_or_fileobj=f.source if isinstance(f.source, bytes) else str(f.source))
                  for f in files]
    commit = api.create_commit(
        repo.repo_id, operations, commit_message=commit_message or "Upload BigModel (bigmodel_hf)",
        revision=revision, repo_type="model",
    )
    return commit.commit_url

