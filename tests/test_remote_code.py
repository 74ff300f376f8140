"""Code shipped with a model folder never runs unless the user passes --trust_remote_code: every load in
the package says so explicitly (found by AST), and a payload folder run through each command with `y` on
stdin (transformers' `[y/N]` prompt, were it asked) leaves no marker and exits with one line."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bigmodel_hf"


def from_pretrained_calls():
    """(file:line, the trust_remote_code keyword or None) of every `*.from_pretrained(...)` call in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
                keyword = next((k for k in node.keywords if k.arg == "trust_remote_code"), None)
                yield f"{path.relative_to(ROOT)}:{node.lineno}", keyword


def test_every_from_pretrained_call_passes_trust_remote_code_explicitly():
    calls = list(from_pretrained_calls())
    assert len(calls) >= 12, calls  # the engine, translator, convert, recipes, lora, tokenizers: the walk found them
    missing = [where for where, keyword in calls if keyword is None]
    assert missing == [], f"from_pretrained without trust_remote_code= (transformers would ask on stdin): {missing}"
    # never a literal True or None (None is what makes transformers prompt)
    literal = [where for where, keyword in calls
               if isinstance(keyword.value, ast.Constant) and keyword.value.value is not False]
    assert literal == [], literal


@pytest.fixture
def payload(tmp_path) -> tuple[Path, Path]:
    """A model folder whose config.json has an unknown model_type and an auto_map into evilmod.py, which
    writes a marker file when imported."""
    folder, marker = tmp_path / "payload", tmp_path / "PWNED"
    folder.mkdir()
    classes = {"AutoConfig": "evilmod.EvilConfig", "AutoModel": "evilmod.EvilModel",
               "AutoModelForSeq2SeqLM": "evilmod.EvilModel", "AutoModelForCausalLM": "evilmod.EvilModel",
               "AutoTokenizer": ["evilmod.EvilTokenizer", None]}
    (folder / "config.json").write_text(json.dumps({"model_type": "evilmodel", "auto_map": classes,
                                                    "architectures": ["EvilModel"]}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": classes["AutoTokenizer"]}}))
    (folder / "evilmod.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import PretrainedConfig, PreTrainedModel\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evilmodel'\n"
        "class EvilModel(PreTrainedModel):\n    config_class = EvilConfig\n"
    )
    return folder, marker


COMMANDS = {
    "serve": ["serve", "--model", "{model}", "--port", "0", "--source_lang", "en", "--target_lang", "es",
              "--corrections", "{tmp}/c.jsonl"],
    "translate --interactive": ["translate", "--interactive", "--model", "{model}", "--source_lang", "en",
                                "--target_lang", "es", "--corrections", "{tmp}/c.jsonl", "a cat"],
    "translate": ["translate", "--model", "{model}", "--device", "cpu", "a cat"],
    "convert-llama": ["convert-llama", "{model}", "{tmp}/out"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_payload_folder_runs_no_code_even_with_y_on_stdin(payload, tmp_path, command):
    folder, marker = payload
    argv = [part.format(model=folder, tmp=tmp_path) for part in COMMANDS[command]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, "-m", "bigmodel_hf.cli", *argv], input="y\ny\ny\n", capture_output=True,
                          text=True, timeout=240, env=env, cwd=tmp_path)
    assert not marker.exists(), f"{command} ran the model's own code: {done.stderr[-2000:]}"
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"bigmodel-hf {argv[0]}: {folder} ships Python code of its own")
    assert "--trust_remote_code" in lines[0] and "Traceback" not in done.stderr
    assert "[y/N]" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "c.jsonl").exists()


def test_the_flag_is_what_lets_the_code_run(payload, tmp_path):
    """The refusal is the default, not a dead end: with --trust_remote_code transformers imports the module."""
    folder, marker = payload
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "bigmodel_hf.cli", "translate", "--model", str(folder), "--device", "cpu",
                    "--trust_remote_code", "a cat"], capture_output=True, text=True, timeout=240, env=env,
                   cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert marker.read_text() == "ran"
