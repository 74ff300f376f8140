"""Rerunning a recipe into a folder that already holds a run (docs/bad_inputs.md, "Reruns"): a finished run
is left alone, another model or other data is refused before anything is written, an unusable
--output_dir is named before any data is read, and Ctrl-C ends with one line and exit status 130.
Both recipes, as their own `main()` (one real process for Ctrl-C)."""

import hashlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bigmodel_hf.toy_data import toy_translation_pairs
from child_processes import default_sigint
from tiny_runs import flags, make_output_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"translate": ROOT / "recipes" / "translate.py", "generate_text": ROOT / "recipes" / "generate_text.py"}
MODELS = {  # the tiny model of each recipe, and the same with another width
    "translate": "d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2",
    "generate_text": "d_model=32,ffn_dim=64,decoder_layers=1,num_attention_heads=2,num_key_value_heads=1",
}
QUICK = dict(max_steps=4, per_device_train_batch_size=4, warmup_steps=0, save_steps=2, eval_strategy="no", load_best_model_at_end="false",
             report_to="none", num_sample_outputs=0, plot="false", seed=0)


def snapshot(root: Path) -> dict:
    """Every path under `root` with its file's SHA-256: equal snapshots mean a byte-for-byte equal folder."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict:
    """Two different toy corpora, each in both recipes' formats."""
    root = tmp_path_factory.mktemp("corpora")
    paths = {}
    for name, seed in (("a", 3), ("b", 4)):
        rows = toy_translation_pairs(24, seed=seed)
        paths[f"translate_{name}"] = root / f"pairs_{name}.jsonl"
        paths[f"translate_{name}"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        paths[f"generate_text_{name}"] = root / f"text_{name}.jsonl"
        paths[f"generate_text_{name}"].write_text(
            "".join(json.dumps({"text": f"{r['en']} {r['en']}"}) + "\n" for r in rows), "utf-8")
    return paths


def recipe_argv(recipe: str, corpus: Path, output_dir: Path, **overrides) -> list[str]:
    data = dict(train_file=corpus, validation_file=corpus)
    if recipe == "translate":
        data.update(test_file=corpus, clean_data="false", vocab_size=120, tokenizer_min_frequency=1, num_beams=1,
                    max_predict_samples=2, generation_max_length=16)
    else:
        data.update(vocab_size=300, tokenizer_min_frequency=1, block_size=16, max_new_tokens=4)
    return flags(**{**data, "output_dir": output_dir, "config_overrides": MODELS[recipe], **QUICK, **overrides})


@pytest.fixture(scope="module")
def mains() -> dict:
    return {name: runpy.run_path(str(path))["main"] for name, path in RECIPES.items()}


@pytest.fixture(scope="module", params=list(RECIPES))
def finished(request, mains, corpora, tmp_path_factory):
    """(recipe, its main, the argv, the output folder) of a finished 4-step run with checkpoints 2 and 4."""
    recipe = request.param
    output_dir = tmp_path_factory.mktemp(f"finished_{recipe}")
    argv = recipe_argv(recipe, corpora[f"{recipe}_a"], output_dir)
    mains[recipe](argv)
    assert (output_dir / "checkpoint-4").is_dir() and (output_dir / "run_info.json").is_file()
    return recipe, mains[recipe], argv, output_dir


@pytest.fixture(scope="module")
def finished_without_checkpoints(mains, corpora, tmp_path_factory):
    """A finished translation run that kept no checkpoint (`save_strategy no`)."""
    output_dir = tmp_path_factory.mktemp("no_checkpoints")
    argv = recipe_argv("translate", corpora["translate_a"], output_dir, save_strategy="no")
    mains["translate"](argv)
    assert (output_dir / "run_info.json").is_file() and not list(output_dir.glob("checkpoint-*"))
    return argv, output_dir


def test_a_finished_run_without_checkpoints_is_left_alone_too(mains, finished_without_checkpoints, capsys):
    argv, output_dir = finished_without_checkpoints
    before = snapshot(output_dir)
    capsys.readouterr()
    mains["translate"](argv)
    assert f"{output_dir} already holds this run, finished at step 4" in capsys.readouterr().out
    message = refused(mains["translate"], argv + flags(config_overrides=MODELS["translate"] + ",ffn_dim=48"))
    assert f"{output_dir} holds another model than this run asks for (ffn_dim 64 there, 48 here" in message
    assert snapshot(output_dir) == before


def refused(main, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    message = str(stop.value.code)
    assert "\n" not in message, message  # one line
    return message


def test_rerunning_a_finished_run_does_nothing(finished, capsys):
    recipe, main, argv, output_dir = finished
    before = snapshot(output_dir)
    capsys.readouterr()
    main(argv)  # returns: exit status 0
    said = capsys.readouterr().out
    assert f"{output_dir} already holds this run, finished at step 4" in said
    assert f"results in {output_dir / 'eval_results.json'}" in said
    assert snapshot(output_dir) == before and not (output_dir / "checkpoint-5").exists()


def test_a_run_stopped_during_its_final_evaluation_finishes_without_training_past_the_end(finished, corpora, tmp_path):
    recipe, main, _, output_dir = finished
    stopped = tmp_path / "stopped"  # what Ctrl-C during the final evaluation leaves: checkpoints, no results
    shutil.copytree(output_dir, stopped)
    for name in ("run_info.json", "eval_results.json", "README.md", "model.safetensors"):
        (stopped / name).unlink()
    main(recipe_argv(recipe, corpora[f"{recipe}_a"], stopped))  # the same command, in that folder
    assert sorted(p.name for p in stopped.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert json.loads((stopped / "run_info.json").read_text())["global_step"] == 4
    assert (stopped / "eval_results.json").is_file() and (stopped / "README.md").is_file()
    final, last = load_file(stopped / "model.safetensors"), load_file(stopped / "checkpoint-4" / "model.safetensors")
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)  # its weights, untrained


@pytest.mark.parametrize("change", ["config_overrides", "preset", "resume_from_other_shape", "pretrained_of_other_shape"])
def test_another_model_is_refused_before_anything_is_written(finished, change, tmp_path):
    recipe, main, argv, output_dir = finished
    other_run, _ = make_output_dir(tmp_path / "other", encoder_decoder=recipe == "translate")  # ffn_dim 48
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):  # whole archives: a complete checkpoint
        torch.save({}, other_run / "checkpoint-2" / name)
    before, before_other = snapshot(output_dir), snapshot(other_run)
    overrides = {
        "config_overrides": dict(config_overrides=MODELS[recipe].replace("d_model=32", "d_model=64")),
        "preset": dict(preset="modern-small" if recipe == "translate" else "vaswani-small"),
        "resume_from_other_shape": dict(resume_from_checkpoint=other_run / "checkpoint-2"),
        "pretrained_of_other_shape": dict(model_name_or_path=other_run),  # fine-tuning: weight shapes compared
    }[change]
    message = refused(main, argv + flags(**overrides))
    assert message.startswith(f"{recipe}.py: ") and "holds another model than this run asks for" in message
    expected = {"config_overrides": "d_model 32 there, 64 here", "preset": "there,",
                "resume_from_other_shape": "ffn_dim 48 there, 64 here",
                "pretrained_of_other_shape": "[64, 32] there, [48, 32] here"}[change]
    assert expected in message and "give a new --output_dir" in message, message
    assert snapshot(output_dir) == before and snapshot(other_run) == before_other


def test_resuming_on_other_data_is_refused_unless_allowed(finished, corpora, tmp_path):
    recipe, main, argv, output_dir = finished
    other_data = corpora[f"{recipe}_b"]
    before = snapshot(output_dir)
    longer = argv + flags(max_steps=6, train_file=other_data)  # not finished at 6: this would resume checkpoint-4
    message = refused(main, longer)
    assert message.startswith(f"{recipe}.py: The data differs from what {output_dir / 'checkpoint-4'} was trained on")
    assert f"train: {corpora[f'{recipe}_a']} (sha256 " in message and f"{other_data} (sha256 " in message
    assert "--allow_data_change" in message
    assert snapshot(output_dir) == before

    # The same data under another name is the same data; with the flag, other data continues the run.
    copy = tmp_path / "renamed.jsonl"
    copy.write_bytes(corpora[f"{recipe}_a"].read_bytes())
    continued = tmp_path / "continued"
    shutil.copytree(output_dir, continued, ignore=shutil.ignore_patterns("checkpoint-2"))
    main(recipe_argv(recipe, copy, continued, max_steps=6))
    assert (continued / "checkpoint-6").is_dir()
    main(recipe_argv(recipe, other_data, continued, max_steps=8) + flags(allow_data_change="true"))
    assert (continued / "checkpoint-8").is_dir()
    recorded = json.loads((continued / "data_fingerprint.json").read_text())
    assert recorded["train"]["path"] == str(other_data)  # the checkpoints from here on were trained on it
    assert "allow_data_change" not in (continued / "run_config.yaml").read_text()  # a one-command permission


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("where", ["a_file", "under_a_file", "read_only_file_system", "no_permission"])
def test_an_unusable_output_dir_is_named_before_any_data_is_read(mains, recipe, where, tmp_path):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("not a folder")
    if where == "read_only_file_system":
        if not Path("/proc/self").is_dir():
            pytest.skip("needs /proc (a file system where no file can be created)")
        output_dir, fragment = Path("/proc/bigmodel_hf_run"), "--output_dir /proc/bigmodel_hf_run is not writable"
    elif where == "no_permission":
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder anyway; the read-only file system case covers root")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        output_dir, fragment = locked / "run", "is not writable (in"
    else:
        output_dir = blocker if where == "a_file" else blocker / "run"
        fragment = "is a file, not a folder" if where == "a_file" else f"cannot be created: {blocker} is a file"
    before = snapshot(tmp_path)
    # The data does not exist either: the output folder is what the one line must name.
    message = refused(mains[recipe], recipe_argv(recipe, tmp_path / "missing.jsonl", output_dir))
    assert message.startswith(f"{recipe}.py: --output_dir {output_dir}") and fragment in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_ctrl_c_prints_one_line_naming_the_step_and_the_checkpoint(corpora, recipe, tmp_path):
    output_dir = tmp_path / "run"
    argv = recipe_argv(recipe, corpora[f"{recipe}_a"], output_dir, max_steps=100_000, save_steps=3)
    process = subprocess.Popen([sys.executable, str(RECIPES[recipe]), *argv], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not (output_dir / "checkpoint-6" / "trainer_state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(f"{recipe}.py: interrupted at step ")]
    assert len(lines) == 1, stderr[-3000:]
    step, checkpoint = lines[0].removeprefix(f"{recipe}.py: interrupted at step ").split(
        ", rerun the same command to resume from ")
    newest = max((p for p in output_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                 key=lambda p: int(p.name.split("-")[1]))
    assert checkpoint == newest.name and int(step) >= int(newest.name.split("-")[1]) >= 6


def test_ctrl_c_before_training_is_one_line_too(mains, corpora, tmp_path, monkeypatch, capsys):
    import bigmodel_hf.training.translation as translation

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(translation, "load_parallel_data", interrupted)
    with pytest.raises(SystemExit) as stop:
        mains["translate"](recipe_argv("translate", corpora["translate_a"], tmp_path / "run"))
    assert stop.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "translate.py: interrupted outside training, rerun the same command to start again")


@pytest.mark.parametrize("bad", ["model_override", "missing_data"])
def test_a_bad_input_to_the_lm_recipe_fails_first_and_overwrites_nothing(mains, bad, tmp_path):
    existing, _ = make_output_dir(tmp_path / "existing", encoder_decoder=False)
    before = snapshot(existing)
    # The data does not exist: a bad override is checked before data, tokenizer or run_config.yaml.
    overrides = {"model_override": dict(config_overrides="d_model=30,num_attention_heads=4"), "missing_data": {}}[bad]
    argv = recipe_argv("generate_text", tmp_path / "missing.jsonl", existing, resume_from_checkpoint="none",
                       **overrides)
    message = refused(mains["generate_text"], argv)
    if bad == "model_override":
        assert message.startswith("generate_text.py: --preset modern-small with --config_overrides 'd_model=30,")
        assert "d_model (30) must be divisible by num_attention_heads (4)" in message
    else:
        assert message.startswith("generate_text.py: ") and "missing.jsonl: no such file" in message, message
    assert snapshot(existing) == before  # run_config.yaml included


def test_the_data_fingerprint_follows_content_not_names(tmp_path):
    from types import SimpleNamespace

    from bigmodel_hf.training.rerun import GENERATED_DATA, data_fingerprint
    from bigmodel_hf.generated_data import STDLIB_DATASET, TOY_DATASET

    def spec(**values):
        return SimpleNamespace(**{"train_file": None, "validation_file": None, "dataset_name": None,
                                  "dataset_config_name": None, **values})

    def content(fingerprint):
        return {split: {k: v for k, v in entry.items() if k != "path"} for split, entry in fingerprint.items()}

    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "b.txt").write_text("one\n")
    (tmp_path / "c.txt").write_text("two\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "train.txt").write_text("one\n")
    same = [content(data_fingerprint(spec(train_file=tmp_path / name), 0)) for name in ("a.txt", "b.txt")]
    assert same[0] == same[1] != content(data_fingerprint(spec(train_file=tmp_path / "c.txt"), 0))
    before = data_fingerprint(spec(dataset_name=str(folder)), 0)
    (folder / "train.txt").write_text("one!\n")
    assert content(data_fingerprint(spec(dataset_name=str(folder)), 0)) != content(before)
    # generated data sets: their content follows the seed (toy grammar) or the Python (stdlib docstrings)
    assert set(GENERATED_DATA) == {TOY_DATASET, STDLIB_DATASET}
    assert data_fingerprint(spec(dataset_name=TOY_DATASET), 1) != data_fingerprint(spec(dataset_name=TOY_DATASET), 2)
    assert data_fingerprint(spec(dataset_name=STDLIB_DATASET), 1) == data_fingerprint(spec(dataset_name=STDLIB_DATASET), 2)


def test_back_translation_names_an_output_dir_under_a_file_first(corpora, tmp_path):
    from bigmodel_hf.training.back_translation import parse_back_translation_config, run_back_translation
    from bigmodel_hf.training.setting_checks import ConfigError

    blocker = tmp_path / "blocker.txt"
    blocker.write_text("not a folder")
    argv = recipe_argv("translate", corpora["translate_a"], blocker / "bt", monolingual_file=corpora["translate_a"])
    with pytest.raises(ConfigError, match=f"--output_dir {blocker / 'bt'} cannot be created: {blocker} is a file"):
        run_back_translation(parse_back_translation_config(argv))
