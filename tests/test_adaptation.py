"""Online adaptation (issue 18): the model learns from each approval, the served weights are reproduced by
replaying the corrections file, saves survive a kill, the base model folder is never written, bad settings
stop with one line. Tiny random models: each test takes a few seconds."""

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml
from interactive_models import PAIRS, make_model_dir, write_pairs
from safetensors.torch import load_file

from bigmodel_hf.cli import main
from bigmodel_hf.interactive import CompletionEngine
from bigmodel_hf.interactive.adaptation import (INFO, LEARNING_NICENESS, AdaptSettings, OnlineAdapter,
                                                read_corrections)
from bigmodel_hf.interactive.session import CorrectionLog
from bigmodel_hf.interactive.terminal import run_terminal
from bigmodel_hf.interactive.web import InteractiveApp

ROOT = Path(__file__).resolve().parents[1]
APPROVED = [(row["en"], row["es"]) for row in PAIRS[:5]]
FAST = dict(learning_rate=0.01, steps_per_approval=2, replay_approved=2, replay_original=2, seed=3)


@pytest.fixture
def base(tmp_path):
    """A tiny model folder whose run_config names its training file (so original pairs are replayed too)."""
    folder = make_model_dir(tmp_path / "base")
    write_pairs(folder / "train.jsonl", PAIRS[10:40])
    run_config = yaml.safe_load((folder / "run_config.yaml").read_text())
    (folder / "run_config.yaml").write_text(yaml.safe_dump({**run_config, "train_file": "train.jsonl"}))
    return folder


def served(base, corrections: Path, settings: AdaptSettings, output_dir: Path, pairs=APPROVED):
    """The serving path: approvals through the web app, learned in the background while it serves on."""
    engine = CompletionEngine.from_pretrained(base)
    adapter = OnlineAdapter(engine.model, engine.tokenizer, base, corrections, settings, output_dir,
                            install=engine.replace_weights, source_lang="en", target_lang="es")
    app = InteractiveApp(engine, CorrectionLog(corrections, "en", "es"), [s for s, _ in pairs], adapter=adapter)
    app.handle("next", {}, "tab")
    for _, translation in pairs:
        app.handle("approve", {"text": translation}, "tab")
    return engine, adapter, app


def tensors(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_approval_changes_the_weights_and_the_next_completion_uses_them(base, tmp_path):
    engine = CompletionEngine.from_pretrained(base)
    source = APPROVED[1][0]
    before = engine.complete(source, "")  # its encoder output is now cached
    adapter = OnlineAdapter(engine.model, engine.tokenizer, base, tmp_path / "c.jsonl",
                            AdaptSettings(**{**FAST, "moves": "all", "learning_rate": 0.05}), tmp_path / "out",
                            install=engine.replace_weights, source_lang="en", target_lang="es")
    adapter.learn(*APPROVED[1])
    adapter.wait()
    assert adapter.status()["learned"] == 1 and engine.weights_version == 1
    base_weights = tensors(base)
    changed = [name for name, p in engine.model.named_parameters() if not torch.equal(p, base_weights[name])]
    assert any(".encoder." in name for name in changed) and any(".decoder." in name for name in changed)
    after = engine.complete(source, "")
    adapter.close()
    fresh = CompletionEngine.from_pretrained(tmp_path / "out").complete(source, "")  # new weights, empty cache
    assert after.token_ids == fresh.token_ids
    assert after.token_probabilities == pytest.approx(fresh.token_probabilities, abs=1e-6)
    assert (after.token_ids, after.token_probabilities) != (before.token_ids, before.token_probabilities)
    learned_pair = engine.complete(APPROVED[1][0], "")  # learning a pair raises its probability
    assert json.loads((tmp_path / "out" / INFO).read_text())["pairs_learned"] == 1
    assert learned_pair.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread niceness is a Linux facility")
def test_learning_runs_below_serving_priority(base, tmp_path):
    """Updates yield the core to completions: the learning thread drops to the lowest priority, and the
    serving thread (here the test's) keeps its own."""
    engine = CompletionEngine.from_pretrained(base)
    seen = []

    def install(tensors):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        engine.replace_weights(tensors)

    serving_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    adapter = OnlineAdapter(engine.model, engine.tokenizer, base, tmp_path / "c.jsonl", AdaptSettings(**FAST),
                            tmp_path / "out", install=install, source_lang="en", target_lang="es")
    adapter.learn(*APPROVED[0])
    adapter.close()
    assert seen == [LEARNING_NICENESS] and serving_before < LEARNING_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == serving_before


@pytest.mark.parametrize("moves", ["all", "decoder", "lora"])
def test_offline_replay_reproduces_the_served_weights_exactly(base, tmp_path, moves):
    settings = AdaptSettings(**FAST, moves=moves, save_every=2)
    corrections = tmp_path / "corrections.jsonl"
    engine, adapter, _ = served(base, corrections, settings, tmp_path / "served")
    adapter.close()
    assert len(read_corrections(corrections, "en", "es")) == len(APPROVED) == adapter.learned
    main(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir", str(tmp_path / "offline"),
          "--adapt_learning_rate", "0.01", "--adapt_steps_per_approval", "2", "--adapt_replay_approved", "2",
          "--adapt_replay_original", "2", "--adapt_seed", "3", "--adapt_moves", moves, "--adapt_save_every", "2"])
    online, offline = tensors(tmp_path / "served"), tensors(tmp_path / "offline")
    assert online.keys() == offline.keys()
    assert all(torch.equal(online[name], offline[name]) for name in online)  # bit for bit, not approximately
    live = dict(engine.model.named_parameters())
    assert all(torch.equal(live[name], online[name]) for name in live)
    base_weights = tensors(base)
    assert any(not torch.equal(online[name], base_weights[name]) for name in online)
    info = json.loads((tmp_path / "served" / INFO).read_text())
    assert info["pairs_learned"] == 5 and info["original_pairs"] == 30 and info["settings"]["moves"] == moves


KILLED_SAVE = """
import os, signal, sys
from pathlib import Path
import bigmodel_hf.interactive.adaptation as adaptation
from bigmodel_hf.interactive.adaptation import AdaptSettings, replay_corrections
base, corrections, output_dir, where = sys.argv[1:5]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "writing":
    adaptation.save_file = die  # the weights are written into the temporary folder, the state is not
else:  # the old folder moved aside, the new one not yet renamed in
    rename = os.rename
    def rename_then_die(source, target):
        rename(source, target)
        if str(target).endswith(".previous"):
            die()
    adaptation.os.rename = rename_then_die
replay_corrections(base, corrections, output_dir, AdaptSettings(**{json}))
"""


@pytest.mark.parametrize("where", ["writing", "renaming"])
def test_a_kill_during_the_save_keeps_the_previous_weights_and_a_restart_resumes(base, tmp_path, where):
    settings = AdaptSettings(**FAST, save_every=100)
    corrections, out = tmp_path / "corrections.jsonl", tmp_path / "adapted"
    write_pairs(corrections, [{"en": s, "es": t} for s, t in APPROVED[:2]])
    main(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir", str(out),
          "--adapt_learning_rate", "0.01", "--adapt_replay_approved", "2", "--adapt_replay_original", "2",
          "--adapt_seed", "3", "--adapt_save_every", "100"])
    saved = tensors(out)
    write_pairs(corrections, [{"en": s, "es": t} for s, t in APPROVED[:4]])  # two more approvals
    script = KILLED_SAVE.replace("{json}", repr(json.dumps(FAST | {"save_every": 100})).join(["json.loads(", ")"]))
    script = "import json\n" + script
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script, str(base), str(corrections), str(out), where],
                            env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    # the previous save is intact (after the interrupted rename it is put back on the next start)
    restarted = OnlineAdapter(*_model_and_tokenizer(base), base, corrections, settings, out,
                              source_lang="en", target_lang="es")
    restarted.wait()
    assert restarted.learned == 4
    restarted.close()
    main(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir", str(tmp_path / "ref"),
          "--adapt_learning_rate", "0.01", "--adapt_replay_approved", "2", "--adapt_replay_original", "2",
          "--adapt_seed", "3", "--adapt_save_every", "100"])
    resumed, reference = tensors(out), tensors(tmp_path / "ref")
    assert all(torch.equal(resumed[name], reference[name]) for name in reference)
    assert any(not torch.equal(resumed[name], saved[name]) for name in saved)
    assert not list(tmp_path.glob(".adapted.saving-*")) and not (tmp_path / "adapted.previous").exists()


def _model_and_tokenizer(folder):
    engine = CompletionEngine.from_pretrained(folder)
    return engine.model, engine.tokenizer


def test_the_previous_save_stays_loadable_when_the_save_is_killed(base, tmp_path):
    """Between the kill and a restart, the folder on disk is the previous save (Translator loads it)."""
    from bigmodel_hf.translator import Translator

    corrections, out = tmp_path / "corrections.jsonl", tmp_path / "adapted"
    write_pairs(corrections, [{"en": s, "es": t} for s, t in APPROVED[:1]])
    main(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir", str(out)])
    before = snapshot(out)
    write_pairs(corrections, [{"en": s, "es": t} for s, t in APPROVED[:2]])
    script = "import json\n" + KILLED_SAVE.replace("{json}", "json.loads('{}')")
    result = subprocess.run([sys.executable, "-c", script, str(base), str(corrections), str(out), "writing"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert snapshot(out) == before
    assert Translator.from_pretrained(out)(APPROVED[0][0])


def test_a_read_only_base_folder_is_never_written(base, tmp_path):
    before = snapshot(base)
    for path in [base, *base.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        corrections = tmp_path / "work" / "corrections.jsonl"
        engine, adapter, app = served(base, corrections, AdaptSettings(**FAST), None, APPROVED[:3])
        assert app.state()["adaptation"]["learned"] in range(4)
        adapter.close()
        assert app.state()["adaptation"] == {"learned": 3, "queued": 0, "error": None,
                                             "last_update": adapter.last_update}
        assert (tmp_path / "work" / "corrections_adapted" / "model.safetensors").is_file()  # beside the corrections
        assert snapshot(base) == before
        with pytest.raises(ValueError, match="inside the base model folder"):
            OnlineAdapter(engine.model, engine.tokenizer, base, corrections, AdaptSettings(), base / "adapted")
    finally:
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_the_terminal_prints_one_line_per_approval_and_the_card_says_it_was_adapted(base, tmp_path):
    import io

    from bigmodel_hf.cards import build_model_card

    engine = CompletionEngine.from_pretrained(base)
    corrections = tmp_path / "corrections.jsonl"
    adapter = OnlineAdapter(engine.model, engine.tokenizer, base, corrections, AdaptSettings(**FAST),
                            tmp_path / "out", install=engine.replace_weights, source_lang="en", target_lang="es")
    answers = iter([APPROVED[0][1], "", APPROVED[1][1], "", "/quit"])
    out = io.StringIO()
    run_terminal(engine, CorrectionLog(corrections, "en", "es"), [APPROVED[0][0], APPROVED[1][0]],
                 input_fn=lambda prompt: next(answers), out=out, adapter=adapter)
    adapter.close()
    lines = [line for line in out.getvalue().splitlines() if "model adapted from" in line]
    assert len(lines) == 2 and lines[0].startswith("  model adapted from")
    card = str(build_model_card(tmp_path / "out"))
    assert "adapted online" in card and "from 2 approved" in card and "learning rate 0.01" in card
    from bigmodel_hf.hub import plan_upload, upload_problems, with_rebuilt_card

    files = with_rebuilt_card(plan_upload(tmp_path / "out"), tmp_path / "out")  # what `push` would send
    names = {file.path_in_repo for file in files}
    assert {"model.safetensors", "tokenizer.json", "README.md", "run_config.yaml"} <= names
    assert INFO not in names and "adaptation_state.safetensors" not in names  # local paths, optimiser moments
    assert upload_problems(files, tmp_path / "out") == {}


def bad(argv, tmp_path) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    message = str(stopped.value.code)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("flags, expected", [
    (["--adapt_learning_rate", "-0.001"], "--adapt_learning_rate must be a positive number, not -0.001"),
    (["--adapt_learning_rate", "nan"], "--adapt_learning_rate must be a positive number, not nan"),
    (["--adapt_steps_per_approval", "0"], "--adapt_steps_per_approval must be at least 1, not 0"),
    (["--adapt_replay_approved", "-1"], "--adapt_replay_approved must be 0 or more, not -1"),
])
def test_bad_settings_give_one_line_and_write_nothing(base, tmp_path, flags, expected):
    corrections = tmp_path / "corrections.jsonl"
    write_pairs(corrections, [{"en": s, "es": t} for s, t in APPROVED[:1]])
    message = bad(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir",
                   str(tmp_path / "out"), *flags], tmp_path)
    assert expected in message and not (tmp_path / "out").exists()
    message = bad(["serve", "--model", str(base), "--corrections", str(corrections), "--adapt", *flags], tmp_path)
    assert expected in message and not (tmp_path / "corrections_adapted").exists()


def test_a_corrections_file_that_is_not_json_lines_gives_one_line(base, tmp_path):
    corrections = tmp_path / "corrections.jsonl"
    corrections.write_text('{"translation": {"en": "a", "es": "b"}}\nthis is not JSON\n')
    message = bad(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir",
                   str(tmp_path / "out")], tmp_path)
    assert f"{corrections}: line 2" in message and "not valid JSON" in message
    corrections.write_text('{"en": "a"}\n')
    message = bad(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir",
                   str(tmp_path / "out")], tmp_path)
    assert "record 1 is not" in message and not (tmp_path / "out").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    message = bad(["serve", "--model", str(base), "--corrections", str(tmp_path / "c.jsonl"), "--adapt",
                   "--adapt_output_dir", str(tmp_path / "other")], tmp_path)
    assert "holds files but no adaptation.json" in message


def test_the_benchmark_script_writes_its_tables(tmp_path):
    """benchmarks/online_adaptation.py end to end on a tiny model: 4 document sentences, one adapting arm."""
    from benchmark_scripts import load_benchmark

    script = load_benchmark("online_adaptation")
    model = make_model_dir(tmp_path / "model", max_length=12, num_beams=2)
    document = tmp_path / "document.jsonl"
    write_pairs(document, PAIRS[:6])
    out = tmp_path / "results.md"
    script.main(["--model", str(model), "--document", str(document), "--bible", str(document), "--sentences", "4",
                 "--block", "2", "--heldout_start", "4", "--heldout_end", "6", "--bible_pairs", "2", "--keystroke_every", "2",
                 "--arms", "lora:1e-3", "--out", str(out)])
    text = out.read_text()
    assert "| no adaptation | " in text and "| lora, lr 1e-3 | " in text and "3-4 | vs no adaptation |" in text
    lora_row = [line for line in text.splitlines() if line.startswith("| lora, lr 1e-3 | ")][1]
    assert lora_row.count("/") >= 3  # completion, approval -> proposal and update times were measured


def test_resuming_onto_another_history_is_refused(base, tmp_path):
    corrections, out = tmp_path / "corrections.jsonl", tmp_path / "out"
    write_pairs(corrections, [{"en": s, "es": t} for s, t in APPROVED[:2]])
    main(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir", str(out)])
    before = snapshot(out)
    message = bad(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir", str(out),
                   "--adapt_learning_rate", "0.5"], tmp_path)
    assert "was adapted with other settings" in message
    write_pairs(corrections, [{"en": s, "es": t} for s, t in APPROVED[1:3]])
    message = bad(["adapt", "--model", str(base), "--corrections", str(corrections), "--output_dir", str(out)],
                  tmp_path)
    assert "learned from 2 pairs that are not the first 2 of the corrections file" in message
    assert snapshot(out) == before


def test_translate_interactive_with_adapt_saves_and_a_restart_resumes(base, tmp_path, monkeypatch, capsys):
    corrections = tmp_path / "corrections.jsonl"
    for number, (source, translation) in enumerate(APPROVED[:2], 1):
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO(f"{translation}\n\n/quit\n"))
        main(["translate", "--interactive", "--model", str(base), "--corrections", str(corrections), "--adapt",
              "--adapt_learning_rate", "0.01", source])
        captured = capsys.readouterr()
        assert f"Adapted weights ({number} approved pairs learned) are in {tmp_path / 'corrections_adapted'}" \
            in captured.out
        assert ("resumed from" in captured.err) == (number == 2)
    info = json.loads((tmp_path / "corrections_adapted" / INFO).read_text())
    assert info["pairs_learned"] == 2 and info["original_pairs"] == 30
