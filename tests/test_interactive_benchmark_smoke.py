"""Smoke test of benchmarks/interactive_translation.py: the simulation and latency tables on a tiny model."""

import pytest
from benchmark_scripts import load_benchmark
from interactive_models import PAIRS, make_model_dir, write_pairs


@pytest.fixture(scope="module")
def script():
    return load_benchmark("interactive_translation")


def test_benchmark_writes_both_tables_and_keeps_notes(script, tmp_path):
    model = make_model_dir(tmp_path / "model", max_length=12, num_beams=2)
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, PAIRS[:3])
    out = tmp_path / "results.md"
    out.write_text("old numbers\n" + script.NOTES_MARKER + "\nkept note\n")
    script.main(["--model", str(model), "--pairs", str(pairs), "--max_pairs", "2", "--keystroke_pairs", "2",
                 "--latency_sentences", "1", "--threads", "1", "--out", str(out), "--note", "A tiny random model."])
    text = out.read_text()
    assert "old numbers" not in text and text.endswith("\nkept note\n") and "A tiny random model." in text
    simulation_row = text.split("|---|---|---|---|---|---|---|---|\n")[1].splitlines()[0]
    assert simulation_row.startswith("| 2 | ")
    assert "Typing character by character instead (the first 2 pairs" in text
    assert "No pair has 25-35 reference words: the 1 longest pairs" in text
    latency_row = text.split("|---|---|---|---|---|---|---|---|---|\n")[1].splitlines()[0]
    assert latency_row.startswith("| 1 | ")


def test_percentile(script):
    assert script.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.9) == 5.0
    assert script.percentile([5.0, 1.0, 3.0], 0.5) == 3.0
