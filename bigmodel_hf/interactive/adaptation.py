"""Online adaptation: the model learns from each approved translation while the person works on the next.

    adapter = OnlineAdapter(engine.model, engine.tokenizer, base_dir, corrections, AdaptSettings(),
                            output_dir, install=engine.replace_weights)
    adapter.learn(source, translation)   # after CorrectionLog.append: returns at once, a worker thread updates
    adapter.status()                     # {"learned": 12, "last_update": "10:31:02", "queued": 0, ...}
    adapter.close()                      # finish what is queued, save

After approval k the worker takes `steps_per_approval` optimiser steps on a batch of the new pair, up to
`replay_approved` earlier approved pairs and up to `replay_original` pairs of the model's own training
data (so it does not forget), then hands the new weights to `install` (the engine copies them in between
two completions and drops its encoder outputs). The weights after approval k depend only on the base
model, the settings and the first k pairs of the corrections file: the replay sample is drawn from a
generator seeded with (seed, k), dropout is off during updates, and updates run one after another in
approval order. So `bigmodel-hf adapt` replaying the corrections file reproduces the served weights
exactly (same device and thread count), and a restart resumes from the saved state (the moving weights
and the optimiser's moments) as if never stopped.

The adapted folder is a normal checkpoint (model, tokenizer, run_config.yaml of the base) plus
`adaptation.json` (what it learned from, with which settings: the card reads it) and
`adaptation_state.safetensors` (what resuming needs). It is replaced atomically: written to a temporary
folder beside it, fsynced, then renamed in; a kill at any moment leaves the previous save loadable.
"""

import copy
import hashlib
import json
import os
import queue
import random
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.errors import DataError
from ..data.jsonl import read_json_lines
from ..pretrained import read_run_config, weight_files

MOVES = ("all", "decoder", "lora")
INFO = "adaptation.json"
STATE = "adaptation_state.safetensors"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # self- and cross-attention of BigModel
MAX_TOKENS = 128  # longer pairs are cut for the update (the recipe's max_source/target_length)


@dataclass(frozen=True)
class AdaptSettings:
    learning_rate: float = 1e-3
    steps_per_approval: int = 2
    replay_approved: int = 4   # earlier approved pairs mixed into each step's batch
    replay_original: int = 4   # pairs of the model's own training data mixed in (when at hand)
    moves: str = "lora"        # all | decoder | lora (the default: least forgetting measured)
    lora_rank: int = 8
    save_every: int = 10       # approvals between saves (and one at exit)
    seed: int = 0

    def check(self) -> "AdaptSettings":
        """These settings, or ValueError naming the flag, the bad value and what it must be."""
        import math

        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise ValueError(f"--adapt_learning_rate must be a positive number, not {self.learning_rate}")
        for name in ("steps_per_approval", "lora_rank", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--adapt_{name} must be at least 1, not {getattr(self, name)}")
        for name in ("replay_approved", "replay_original"):
            if getattr(self, name) < 0:
                raise ValueError(f"--adapt_{name} must be 0 or more, not {getattr(self, name)}")
        if self.moves not in MOVES:
            raise ValueError(f"--adapt_moves must be one of {', '.join(MOVES)}, not {self.moves!r}")
        if self.moves == "lora":
            try:
                import peft  # noqa: F401
            except ImportError:
                raise ValueError("--adapt_moves lora needs the peft package: pip install 'bigmodel-hf[lora]'") \
                    from None
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "AdaptSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


# ------------------------------------------------------------------------------- the pairs it learns from


def _pair_of(row, source_lang: str, target_lang: str):
    if isinstance(row, dict) and isinstance(row.get("translation"), dict):
        row = row["translation"]
    if isinstance(row, dict) and isinstance(row.get(source_lang), str) and isinstance(row.get(target_lang), str):
        return row[source_lang], row[target_lang]
    return None


def read_corrections(path, source_lang: str, target_lang: str) -> list[tuple[str, str]]:
    """The approved pairs of a corrections file, in order; ValueError (one line) if it is no such file."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ValueError(f"corrections file {path} is a folder; give the JSON Lines file approvals went to")
        return []
    try:
        rows = read_json_lines(path)
    except UnicodeDecodeError:
        raise ValueError(f"corrections file {path} is not UTF-8 text; give the JSON Lines file approvals "
                         "went to") from None
    except DataError as error:
        raise ValueError(f"corrections file {error}") from None
    pairs = []
    for number, row in enumerate(rows, 1):
        pair = _pair_of(row, source_lang, target_lang)
        if pair is None:
            raise ValueError(f"corrections file {path}: record {number} is not "
                             f'{{"translation": {{"{source_lang}": ..., "{target_lang}": ...}}}}; '
                             "give the file `serve` or `translate --interactive` wrote")
        pairs.append(pair)
    return pairs


def pairs_digest(pairs) -> str:
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(json.dumps([source, target], ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def original_pairs(base_dir, source_lang: str, target_lang: str) -> tuple[list[tuple[str, str]], str | None]:
    """The base model's training pairs when its run_config.yaml names a train_file that is at hand here
    (as given, or relative to the model folder or beside it), with that file's path; else ([], None)."""
    base_dir = Path(base_dir)
    train_file = read_run_config(base_dir / "run_config.yaml").get("train_file")
    if not isinstance(train_file, str) or not train_file:
        return [], None
    for candidate in (Path(train_file), base_dir / train_file, base_dir.parent / train_file):
        if candidate.is_file():
            try:
                rows = read_json_lines(candidate)
            except (DataError, UnicodeDecodeError):
                return [], None
            pairs = [pair for row in rows if (pair := _pair_of(row, source_lang, target_lang))]
            return pairs, str(candidate)
    return [], None


# ------------------------------------------------------------------------------- the weights that move


class Learner:
    """A copy of the served model that takes the optimiser steps; `served_weights()` is what the served
    model must hold (for LoRA: each adapted matrix with its low-rank update merged in)."""

    def __init__(self, model, tokenizer, settings: AdaptSettings, source_prefix: str = ""):
        # a tokenizer of its own: a fast tokenizer's padding/truncation state is not safe to share across threads
        self.settings, self.tokenizer, self.source_prefix = settings, copy.deepcopy(tokenizer), source_prefix or ""
        self.model = copy.deepcopy(model)
        self.model.eval()  # dropout off: updates are deterministic, and a few steps need no regulariser
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        if settings.moves == "lora":
            import peft

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)  # LoRA's A matrices start random: the same ones every time
                config = peft.LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank,
                                         lora_dropout=0.0, target_modules=LORA_TARGETS)
                self.model = peft.get_peft_model(self.model, config)
            self.lora_layers = {name.removeprefix("base_model.model."): module
                                for name, module in self.model.named_modules()
                                if isinstance(module, peft.tuners.lora.LoraLayer)}
        else:
            for name, parameter in self.model.named_parameters():
                parameter.requires_grad_(settings.moves == "all" or "decoder." in name)
        self.moving = {name: p for name, p in self.model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.AdamW(list(self.moving.values()), lr=settings.learning_rate,
                                           betas=(0.9, 0.98), eps=1e-8, weight_decay=0.0)

    def update(self, approved: list[tuple[str, str]], originals: list[tuple[str, str]]) -> float:
        """Steps on the newest pair of `approved` plus replay; returns the last step's loss."""
        settings, k = self.settings, len(approved)
        sampler = random.Random(f"{settings.seed}:{k}")  # the sample depends on k only, never on timing
        loss = torch.tensor(0.0)
        for _ in range(settings.steps_per_approval):
            batch = [approved[-1]]
            batch += sampler.sample(approved[:-1], min(settings.replay_approved, k - 1))
            batch += [originals[i] for i in sampler.sample(range(len(originals)),
                                                           min(settings.replay_original, len(originals)))]
            inputs = self.tokenizer([self.source_prefix + s for s, _ in batch], text_target=[t for _, t in batch],
                                    padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            labels = inputs["labels"].masked_fill(inputs["labels"] == self.tokenizer.pad_token_id, -100)
            device = next(iter(self.moving.values())).device
            loss = self.model(input_ids=inputs["input_ids"].to(device),
                              attention_mask=inputs["attention_mask"].to(device), labels=labels.to(device)).loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(self.moving.values()), 1.0)
            self.optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def served_weights(self) -> dict[str, torch.Tensor]:
        """Parameter name (of the served model) -> its new value."""
        if self.settings.moves != "lora":
            return {name: p.detach().clone() for name, p in self.moving.items()}
        return {f"{name}.weight": (layer.base_layer.weight + layer.get_delta_weight("default")).detach()
                for name, layer in self.lora_layers.items()}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The moving weights and the optimiser's moments, for resuming exactly."""
        tensors = {f"weights/{name}": p.detach().contiguous() for name, p in self.moving.items()}
        for index, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optimizer/{index}/{key}"] = torch.as_tensor(value).contiguous()
        return tensors

    @torch.no_grad()
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, p in self.moving.items():
            p.copy_(tensors[f"weights/{name}"])
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = value
        if state:
            self.optimizer.load_state_dict({"state": state,
                                            "param_groups": self.optimizer.state_dict()["param_groups"]})


@torch.no_grad()
def copy_weights(model, tensors: dict[str, torch.Tensor]) -> None:
    """Copy parameter values in by name (the offline path's `install`; the engine has its own, under its lock)."""
    parameters = dict(model.named_parameters())
    for name, value in tensors.items():
        parameters[name].copy_(value)


# ------------------------------------------------------------------------------- the adapted folder


def default_output_dir(corrections) -> Path:
    """Beside the corrections file: `corrections.jsonl` -> `corrections_adapted/`."""
    corrections = Path(corrections)
    return corrections.with_name(corrections.stem + "_adapted")


def check_output_dir(output_dir, base_dir) -> Path:
    """`output_dir` if adapted weights may go there: not the base model's folder nor inside it, not a file,
    not a folder holding something else; ValueError (one line) otherwise. Nothing is created here."""
    output_dir, base = Path(output_dir), Path(base_dir)
    if base.is_dir():
        resolved, base_resolved = output_dir.resolve(), base.resolve()
        if resolved == base_resolved or base_resolved in resolved.parents:
            raise ValueError(f"--adapt_output_dir {output_dir} is inside the base model folder {base_dir}, which "
                             "is never written to; give a folder elsewhere")
    if output_dir.is_file():
        raise ValueError(f"--adapt_output_dir {output_dir} is a file; give a folder path")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / INFO).is_file():
        raise ValueError(f"--adapt_output_dir {output_dir} holds files but no {INFO} (not an adapted model); "
                         "give an empty or new folder")
    return output_dir


def recover_interrupted_save(output_dir: Path) -> None:
    """A save killed between its two renames leaves the previous folder as `<name>.previous`: put it back."""
    previous = output_dir.with_name(output_dir.name + ".previous")
    if previous.is_dir() and not output_dir.exists():
        os.rename(previous, output_dir)
    elif previous.is_dir():
        shutil.rmtree(previous)
    for stale in output_dir.parent.glob(f".{output_dir.name}.saving-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def base_identity(base_dir) -> str:
    """A digest of the base model's weight files: resuming on other base weights would be meaningless."""
    digest = hashlib.sha256()
    for path in weight_files(base_dir):
        with open(path, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def save_adapted(output_dir: Path, served_model, tokenizer, base_dir, info: dict,
                 state: dict[str, torch.Tensor]) -> None:
    """Write the adapted checkpoint to a temporary folder beside `output_dir`, fsync it, then swap it in."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = output_dir.parent / f".{output_dir.name}.saving-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    served_model.save_pretrained(temporary)
    tokenizer.save_pretrained(temporary)
    run_config = Path(base_dir) / "run_config.yaml"
    if run_config.is_file():  # languages and source prefix, for serve, Translator and the card
        shutil.copyfile(run_config, temporary / run_config.name)
    (temporary / INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", "utf-8")
    save_file(state, str(temporary / STATE))
    for path in temporary.rglob("*"):
        if path.is_file():
            _fsync(path)
    _fsync(temporary)
    previous = output_dir.with_name(output_dir.name + ".previous")
    if output_dir.exists():
        os.rename(output_dir, previous)
    os.rename(temporary, output_dir)
    _fsync(output_dir.parent)
    if previous.exists():
        shutil.rmtree(previous)


# ------------------------------------------------------------------------------- the worker


LEARNING_NICENESS = 19  # the lowest priority: a completion on the same core gets ~98% of it (CFS weights 1024:15)


def yield_to_serving() -> bool:
    """Lower the calling thread's scheduling priority so that completions, in other threads of this process,
    win any core they share with learning; True if done. Linux only: there `setpriority` takes a thread id
    and niceness counts between threads of one process. Elsewhere the update competes as an equal."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LEARNING_NICENESS)
    except OSError:
        return False
    return True


class OnlineAdapter:
    """Learns from approved pairs in a background thread, in order, handing new weights to `install`.

    On start it resumes from `output_dir` when that holds a save of the same base, settings and a prefix of
    the corrections file, and queues the pairs of the file it has not learned from yet."""

    def __init__(self, served_model, tokenizer, base_dir, corrections, settings: AdaptSettings,
                 output_dir=None, install=None, source_lang: str = "src", target_lang: str = "tgt",
                 source_prefix: str = "", log=None):
        self.settings = settings.check()
        self.base_dir, self.served_model, self.tokenizer = Path(base_dir), served_model, tokenizer
        self.output_dir = check_output_dir(output_dir or default_output_dir(corrections), base_dir)
        self.source_lang, self.target_lang = source_lang, target_lang
        self.install = install or (lambda tensors: copy_weights(served_model, tensors))
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        approved = read_corrections(corrections, source_lang, target_lang)
        self.originals, self.originals_file = ([], None) if settings.replay_original == 0 else \
            original_pairs(base_dir, source_lang, target_lang)
        self.base_identity = base_identity(base_dir)
        recover_interrupted_save(self.output_dir)
        self.learner = Learner(served_model, tokenizer, settings, source_prefix)
        self.approved: list[tuple[str, str]] = []
        self.learned = self.saved = 0
        self.last_update: str | None = None
        self.error: str | None = None
        self.update_seconds: list[float] = []  # per approval: the steps and the swap (not the saves)
        self._resume(approved)
        self._lock = threading.Lock()  # guards `approved` between the caller and the worker
        self._jobs: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._work, daemon=True, name="bigmodel-hf-adapt")
        self._worker.start()
        for pair in approved[self.learned:]:  # approvals the saved weights have not learned from yet
            self.learn(*pair)

    def _resume(self, approved: list[tuple[str, str]]) -> None:
        info_path = self.output_dir / INFO
        if not info_path.is_file():
            return
        where = f"--adapt_output_dir {self.output_dir}"
        try:
            info = json.loads(info_path.read_text("utf-8"))
            count = int(info["pairs_learned"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{info_path} is not an adaptation record; give another --adapt_output_dir") from None
        if info.get("base_weights_sha256") != self.base_identity:
            raise ValueError(f"{where} was adapted from other base weights than {self.base_dir}; "
                             "give that base model or another --adapt_output_dir")
        if AdaptSettings.from_dict(info.get("settings", {})) != self.settings:
            raise ValueError(f"{where} was adapted with other settings ({info.get('settings')}); give the same "
                             "--adapt_* flags or another --adapt_output_dir")
        if count > len(approved) or pairs_digest(approved[:count]) != info.get("pairs_sha256"):
            raise ValueError(f"{where} learned from {count} pairs that are not the first {count} of the "
                             "corrections file; give the corrections file it learned from or another "
                             "--adapt_output_dir")
        self.learner.load_state_tensors(load_file(str(self.output_dir / STATE)))
        self.install(self.learner.served_weights())
        self.approved = list(approved[:count])
        self.learned = self.saved = count
        self.last_update = info.get("last_update")
        self.log(f"adaptation: resumed from {self.output_dir} ({count} approved pairs learned)")

    def learn(self, source: str, translation: str) -> None:
        """Queue one approved pair (as appended to the corrections file); returns at once."""
        with self._lock:
            self.approved.append((source, translation))
            count = len(self.approved)
        self._jobs.put(count)

    def _work(self) -> None:
        yield_to_serving()
        while (count := self._jobs.get()) is not None:
            try:
                if self.error is None:
                    with self._lock:
                        pairs = self.approved[:count]
                    started = time.perf_counter()
                    self.learner.update(pairs, self.originals)
                    self.install(self.learner.served_weights())
                    self.update_seconds.append(time.perf_counter() - started)
                    self.learned, self.last_update = count, datetime.now(timezone.utc).isoformat(timespec="seconds")
                    if count % self.settings.save_every == 0:
                        self.save()
            except Exception as error:  # serving goes on with the last weights; the page and the log say why
                self.error = f"{type(error).__name__}: {error}"
                self.log(f"adaptation stopped: {self.error}")
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def wait(self) -> None:
        """Block until every queued approval has been learned from."""
        self._jobs.join()

    def save(self) -> None:
        """Write what has been learned so far (called from the worker, or after `wait`)."""
        if self.learned == self.saved and (self.learned == 0 or (self.output_dir / INFO).is_file()):
            return  # nothing new (or nothing at all) to write
        info = {
            "adapted_online": True,
            "base_model": str(self.base_dir),
            "base_weights_sha256": self.base_identity,
            "pairs_learned": self.learned,
            "pairs_sha256": pairs_digest(self.approved[:self.learned]),
            "original_pairs_file": self.originals_file,
            "original_pairs": len(self.originals),
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "settings": asdict(self.settings),
            "last_update": self.last_update,
        }
        save_adapted(self.output_dir, self.served_model, self.tokenizer, self.base_dir, info,
                     self.learner.state_tensors())
        self.saved = self.learned

    def close(self) -> None:
        """Learn from what is queued, save, stop the worker."""
        self.wait()
        self._jobs.put(None)
        self._worker.join()
        if self.error is None:
            self.save()

    def status(self) -> dict:
        return {"learned": self.learned, "queued": len(self.approved) - self.learned,
                "last_update": self.last_update, "error": self.error, "output_dir": str(self.output_dir)}

    def describe(self) -> str:
        """One line for the terminal."""
        if self.error:
            return f"  adaptation stopped ({self.error}); approvals are still saved"
        when = f", last update {self.last_update[11:19]} UTC" if self.last_update else ""
        queued = len(self.approved) - self.learned
        return f"  model adapted from {self.learned} approved pair(s){when}" + (f" ({queued} learning)" if queued else "")


def replay_corrections(base_dir, corrections, output_dir, settings: AdaptSettings,
                       source_lang: str | None = None, target_lang: str | None = None, log=None) -> OnlineAdapter:
    """`bigmodel-hf adapt`: learn from every pair of `corrections` in order, as the server did; save."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ..pretrained import check_model_location, one_line_load_errors, source_prefix_of
    from .session import model_languages

    settings.check()
    check_model_location(base_dir)
    source_lang, target_lang = model_languages(base_dir, source_lang, target_lang)
    if not read_corrections(corrections, source_lang, target_lang):
        raise ValueError(f"corrections file {corrections} holds no approved pairs; nothing to learn from")
    check_output_dir(output_dir, base_dir)
    with one_line_load_errors(base_dir):  # as the server loads it: safetensors only, no shipped code run
        model = AutoModelForSeq2SeqLM.from_pretrained(base_dir, use_safetensors=True, trust_remote_code=False).eval()
        tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    adapter = OnlineAdapter(model, tokenizer, base_dir, corrections, settings, output_dir,
                            source_lang=source_lang, target_lang=target_lang,
                            source_prefix=source_prefix_of(model.config, base_dir), log=log)
    adapter.close()
    return adapter
