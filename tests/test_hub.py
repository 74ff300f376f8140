"""Pushing an output directory, tested at the huggingface_hub API boundary (no network).

`HfApi.create_repo` / `create_branch` / `create_commit` are replaced by recorders; the commit's
`CommitOperationAdd`s are written into a fresh folder, which a subprocess without `bigmodel_hf` loads
with `trust_remote_code=True` under `HF_HUB_OFFLINE=1`. A live push runs only when opted in.
"""

import os
import shutil
import re
import subprocess
import sys
import textwrap
import uuid
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, RepoUrl

from bigmodel_hf.cli import main as cli_main
from bigmodel_hf.hub import UnsafeUploadError, plan_upload, push_output_dir
from bigmodel_hf.training.runs import take_over_trainer_push
from tiny_models import random_ids
from tiny_runs import make_output_dir
from without_package import BLOCK_BIGMODEL_HF, offline_env

FAKE_TOKEN = "hf_" + "QwErTy12" * 5
MODEL_AND_CARD = {
    "config.json", "generation_config.json", "model.safetensors", "modeling_bigmodel.py", "configuration_bigmodel.py",
    "tokenizer.json", "tokenizer_config.json", "README.md", "training_curves.png", "eval_results.json",
    "run_config.yaml",
}
CHECKPOINT_MODEL = {f"checkpoint-2/{name}" for name in (
    "config.json", "generation_config.json", "model.safetensors", "modeling_bigmodel.py", "configuration_bigmodel.py",
    "tokenizer.json", "tokenizer_config.json", "trainer_state.json")}
OPTIMIZER_STATES = {"checkpoint-2/optimizer.pt", "checkpoint-2/scheduler.pt", "checkpoint-2/rng_state.pth"}


@pytest.fixture
def hub(monkeypatch):
    """Record what `HfApi` would send; fail the test on any other Hub call."""
    calls = SimpleNamespace(repos=[], branches=[], commits=[])

    def create_repo(self, repo_id, **kwargs):
        calls.repos.append((repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, **kwargs):
        calls.branches.append((repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        operations = list(operations)
        files = {}
        for op in operations:
            with op.as_file() as handle:
                files[op.path_in_repo] = handle.read()
        calls.commits.append(SimpleNamespace(repo_id=repo_id, operations=operations, files=files, kwargs=kwargs))
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{'0' * 40}",
                          commit_message=kwargs["commit_message"], commit_description="", oid="0" * 40)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)  # a token is "configured": it must never be uploaded
    return calls


def test_plan_pushes_the_model_code_tokenizer_and_card_only(tmp_path):
    root, _ = make_output_dir(tmp_path / "run")
    (root / "README.md").write_text("card")
    assert {f.path_in_repo for f in plan_upload(root)} == MODEL_AND_CARD
    with_checkpoints = {f.path_in_repo for f in plan_upload(root, include_checkpoints=True)}
    assert with_checkpoints == MODEL_AND_CARD | CHECKPOINT_MODEL  # no optimizer states unless asked
    everything = {f.path_in_repo for f in plan_upload(root, include_optimizer_states=True, include_logs=True)}
    logs = {"runs/Jan01_host/events.out.tfevents.1.host"}
    assert everything == MODEL_AND_CARD | CHECKPOINT_MODEL | OPTIMIZER_STATES | logs
    assert not any("training_args.bin" in name or name.startswith(("data/", "translations/")) for name in everything)


@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_pushed_files_load_without_the_package_and_match_the_model(tmp_path, hub, encoder_decoder):
    root, model = make_output_dir(tmp_path / "run", encoder_decoder=encoder_decoder)
    url = push_output_dir(root, "alice/bigmodel-tiny", private=True)

    assert url.startswith("https://huggingface.co/alice/bigmodel-tiny/commit/")
    assert hub.repos == [("alice/bigmodel-tiny", {"private": True, "exist_ok": True, "repo_type": "model"})]
    [commit] = hub.commits
    assert set(commit.files) == MODEL_AND_CARD
    for name, content in commit.files.items():
        assert FAKE_TOKEN.encode() not in content and str(tmp_path).encode() not in content, name
    assert b"output_dir: run\n" in commit.files["run_config.yaml"]

    folder = tmp_path / "downloaded"  # what someone else gets from the Hub
    for name, content in commit.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    source = random_ids(2, 7)
    with torch.no_grad():
        if encoder_decoder:
            decoder_ids = random_ids(2, 5, seed=1)
            logits = model(input_ids=source, decoder_input_ids=decoder_ids).logits
            inputs = {"input_ids": source, "decoder_input_ids": decoder_ids}
        else:
            logits = model(input_ids=source).logits
            inputs = {"input_ids": source}
        generated = model.generate(source, max_new_tokens=5, do_sample=False, num_beams=1)
    torch.save(inputs, tmp_path / "inputs.pt")
    snippet = re.search(r"```python\n(.*?)```", commit.files["README.md"].decode(), re.S).group(1)
    (tmp_path / "snippet.py").write_text(snippet.replace("alice/bigmodel-tiny", str(folder)))
    head = "AutoModelForSeq2SeqLM" if encoder_decoder else "AutoModelForCausalLM"
    (tmp_path / "load.py").write_text(LOAD_WITHOUT_PACKAGE.format(head=head))
    env = offline_env(tmp_path)
    env.pop("HF_TOKEN")
    result = subprocess.run(
        [sys.executable, "load.py", str(folder), "inputs.pt", "out.pt", "snippet.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    torch.testing.assert_close(remote["logits"], logits, rtol=0, atol=0)
    assert torch.equal(remote["generated"], generated)
    assert remote["snippet_printed"].strip()  # the card's usage snippet ran and printed an output


LOAD_WITHOUT_PACKAGE = BLOCK_BIGMODEL_HF + textwrap.dedent("""
    import contextlib, io, runpy, sys

    import torch
    from transformers import {head}
    folder, inputs_file, out_file, snippet = sys.argv[1:5]
    inputs = torch.load(inputs_file)
    model = {head}.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        runpy.run_path(snippet)
    with torch.no_grad():
        torch.save({{"logits": model(**inputs).logits,
                    "generated": model.generate(inputs["input_ids"], max_new_tokens=5, do_sample=False, num_beams=1),
                    "snippet_printed": printed.getvalue()}}, out_file)
""")


def test_a_token_in_any_file_refuses_the_push(tmp_path, hub):
    root, _ = make_output_dir(tmp_path / "run")
    (root / "tokenizer_config.json").write_text(f'{{"note": "{FAKE_TOKEN}"}}')
    with pytest.raises(UnsafeUploadError, match="tokenizer_config.json: a Hugging Face access token"):
        push_output_dir(root, "alice/x")
    assert hub.repos == [] and hub.commits == []


def test_a_token_shaped_string_refuses_even_when_it_is_not_ours(tmp_path, hub):
    root, _ = make_output_dir(tmp_path / "run")
    (root / "eval_results.json").write_text('{"note": "hf_' + "Z9" * 17 + '"}')
    with pytest.raises(UnsafeUploadError, match="eval_results.json: a Hugging Face access token"):
        push_output_dir(root, "alice/x")


def test_a_local_path_in_a_pushed_file_refuses_the_push(tmp_path, hub):
    root, _ = make_output_dir(tmp_path / "run")
    (root / "runs" / "Jan01_host" / "events.out.tfevents.1.host").write_bytes(f"\0args {root}\0".encode())
    push_output_dir(root, "alice/x")  # logs are not pushed by default
    with pytest.raises(UnsafeUploadError, match=f"runs/Jan01_host/events.out.tfevents.1.host: the local path {root}"):
        push_output_dir(root, "alice/x", include_logs=True)
    assert len(hub.commits) == 1


def test_checkpoint_state_paths_are_redacted_and_optimizer_states_opt_in(tmp_path, hub):
    root, _ = make_output_dir(tmp_path / "run")
    push_output_dir(root, "alice/x", include_checkpoints=True, revision="with-checkpoints")
    [commit] = hub.commits
    assert set(commit.files) == MODEL_AND_CARD | CHECKPOINT_MODEL
    assert b'"best_model_checkpoint": "checkpoint-2"' in commit.files["checkpoint-2/trainer_state.json"]
    assert hub.branches == [("alice/x", {"branch": "with-checkpoints", "exist_ok": True, "repo_type": "model"})]
    assert commit.kwargs["revision"] == "with-checkpoints"
    push_output_dir(root, "alice/x", include_optimizer_states=True)
    assert set(hub.commits[1].files) == MODEL_AND_CARD | CHECKPOINT_MODEL | OPTIMIZER_STATES


def test_a_folder_without_a_tokenizer_or_code_is_refused(tmp_path):
    root, _ = make_output_dir(tmp_path / "run")
    (root / "modeling_bigmodel.py").unlink()
    with pytest.raises(FileNotFoundError, match="modeling_bigmodel.py"):
        plan_upload(root)
    root, _ = make_output_dir(tmp_path / "run2")
    (root / "tokenizer.json").unlink()
    (root / "tokenizer_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        plan_upload(root)


def test_push_command(tmp_path, hub, capsys):
    root, _ = make_output_dir(tmp_path / "run")
    cli_main(["push", str(root), "--hub_model_id", "alice/x", "--dry_run"])
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("README.md") and set(listed[1:]) == MODEL_AND_CARD - {"README.md"}
    assert hub.commits == []
    cli_main(["push", str(root), "--hub_model_id", "alice/x", "--private", "--include_checkpoints"])
    assert "Pushed" in capsys.readouterr().out
    assert set(hub.commits[0].files) == MODEL_AND_CARD | CHECKPOINT_MODEL
    assert hub.repos[0][1]["private"] is True
    (root / "runs" / "Jan01_host" / "events.out.tfevents.1.host").write_bytes(str(root).encode())
    with pytest.raises(SystemExit, match="local path"):
        cli_main(["push", str(root), "--hub_model_id", "alice/x", "--include_logs"])
    assert len(hub.commits) == 1


def test_recipes_take_over_the_trainer_push(tmp_path):
    from transformers import Seq2SeqTrainingArguments

    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path / "run"), push_to_hub=True, hub_model_id="alice/x",
                                    hub_private_repo=True, report_to="none")
    assert take_over_trainer_push(args) == {"repo_id": "alice/x", "token": None, "private": True, "revision": None}
    assert args.push_to_hub is False  # the Trainer no longer uploads the whole folder itself
    assert take_over_trainer_push(Seq2SeqTrainingArguments(output_dir=str(tmp_path), report_to="none")) is None


LIVE_SWITCH = "BIGMODEL_HF_LIVE_HUB_TEST"  # set to 0 to skip the live test even with a token


@pytest.mark.skipif(not os.environ.get("HF_TOKEN") or os.environ.get(LIVE_SWITCH) == "0",
                    reason=f"live Hub test: runs when HF_TOKEN is set (and {LIVE_SWITCH} is not 0); "
                           "it creates and deletes a private repo")
def test_live_push_and_load_from_the_hub(tmp_path):
    root, model = make_output_dir(tmp_path / "run")
    api = HfApi()
    repo_id = f"{api.whoami()['name']}/bigmodel-hf-test-{uuid.uuid4().hex[:8]}"
    try:
        push_output_dir(root, repo_id, private=True)
        assert set(api.list_repo_files(repo_id)) >= MODEL_AND_CARD
        from transformers import AutoModelForSeq2SeqLM

        loaded = AutoModelForSeq2SeqLM.from_pretrained(repo_id, trust_remote_code=True).eval()
        ids = random_ids(2, 7)
        with torch.no_grad():
            torch.testing.assert_close(loaded.generate(ids, max_new_tokens=5, do_sample=False),
                                       model.generate(ids, max_new_tokens=5, do_sample=False), rtol=0, atol=0)
    finally:
        api.delete_repo(repo_id, missing_ok=True)


def tree_digest(root) -> dict:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_dry_run_runs_the_push_checks_and_marks_what_would_be_refused(tmp_path, hub, capsys):
    root, _ = make_output_dir(tmp_path / "run")
    (root / "runs" / "Jan01_host" / "passwd").symlink_to("/etc/passwd")
    (root / "eval_results.json").write_text('{"note": "hf_' + "Z9" * 17 + '"}')
    before = tree_digest(root)
    with pytest.raises(SystemExit) as stopped:
        cli_main(["push", str(root), "--hub_model_id", "alice/x", "--dry_run", "--include_logs"])
    listed = capsys.readouterr().out.splitlines()
    refused = {line.split("  REFUSED: ")[0]: line.split("  REFUSED: ")[1:] for line in listed if "REFUSED" in line}
    assert refused == {"runs/Jan01_host/passwd": ["a link to /etc/passwd, outside the output directory"],
                       "eval_results.json": ["a Hugging Face access token"]}
    assert str(stopped.value.code).startswith("bigmodel-hf push: the push would be refused: 2 of ")
    assert "\n" not in str(stopped.value.code)
    assert hub.repos == [] and hub.commits == [] and tree_digest(root) == before  # the card was not rewritten
    with pytest.raises(UnsafeUploadError) as real:  # the real push refuses the same two files
        push_output_dir(root, "alice/x", include_logs=True)
    assert "runs/Jan01_host/passwd: a link to /etc/passwd" in str(real.value)
    assert "eval_results.json: a Hugging Face access token" in str(real.value)


def test_a_token_shaped_file_name_is_refused_and_is_no_model_weight(tmp_path, hub, capsys):
    root, model = make_output_dir(tmp_path / "run")
    token_name = "hf_" + "Ab3" * 12
    (root / "runs" / "Jan01_host" / token_name).write_text("scalars")
    shutil.copy(root / "model.safetensors", root / f"{token_name}.safetensors")
    from bigmodel_hf.cards import read_run

    assert read_run(root).num_parameters == model.num_parameters()  # counted once, not twice
    assert f"{token_name}.safetensors" not in {f.path_in_repo for f in plan_upload(root)}
    with pytest.raises(UnsafeUploadError, match=f"runs/Jan01_host/{token_name}: a Hugging Face access token in its name"):
        push_output_dir(root, "alice/x", include_logs=True)
    assert hub.commits == []


BROKEN_RUNS = {
    "stray_safetensors": ("extra.safetensors", b"not weights", None),
    "truncated_safetensors": ("model.safetensors", None, "model.safetensors: not a readable safetensors file"),
    "eval_results_a_list": ("eval_results.json", b"[1, 2]",
                            "eval_results.json: holds a JSON list, expected an object (a mapping)"),
    "run_config_invalid_yaml": ("run_config.yaml", b"learning_rate: [0.1\nseed: 1\n", "run_config.yaml: not valid YAML"),
}


@pytest.mark.parametrize("name, content, message", BROKEN_RUNS.values(), ids=BROKEN_RUNS)
def test_broken_files_give_one_line_naming_the_file(tmp_path, hub, name, content, message):
    root, _ = make_output_dir(tmp_path / "run")
    path = root / name
    path.write_bytes(content if content is not None else path.read_bytes()[:-100])
    before = tree_digest(root)
    for argv in (["card", str(root)], ["push", str(root), "--hub_model_id", "alice/x"],
                 ["push", str(root), "--hub_model_id", "alice/x", "--dry_run"]):
        if message is None:  # a stray weights file is not the model's: not read, not pushed
            try:
                cli_main(argv)
            except SystemExit as stopped:
                raise AssertionError(stopped.code) from None
            continue
        with pytest.raises(SystemExit) as stopped:
            cli_main(argv)
        text = str(stopped.value.code)
        assert text.startswith(f"bigmodel-hf {argv[0]}: {path}") and message in text and "\n" not in text, text
        assert tree_digest(root) == before and hub.commits == []
    if message is None:
        assert "extra.safetensors" not in hub.commits[0].files


def test_a_recipe_push_builds_the_card_once(tmp_path, hub, monkeypatch):
    from bigmodel_hf import cards
    from bigmodel_hf.training import runs

    root, _ = make_output_dir(tmp_path / "run")
    built = []
    real_build = cards.build_model_card
    monkeypatch.setattr(cards, "build_model_card", lambda *a, **k: built.append(a) or real_build(*a, **k))
    monkeypatch.setattr(runs, "describe_run", lambda *a: {"num_processes": 1, "device": "cpu"})
    trainer = SimpleNamespace(is_world_process_zero=lambda: True, args=SimpleNamespace(output_dir=str(root)))
    push = {"repo_id": "alice/x", "token": None, "private": None, "revision": None}
    runs.finish_run(trainer, None, {}, 0.0, push)
    assert len(built) == 1  # finish_run's card is the one pushed, not rebuilt
    assert b"alice/x" in hub.commits[0].files["README.md"] and hub.commits[0].files["README.md"] == (
        root / "README.md").read_bytes()
