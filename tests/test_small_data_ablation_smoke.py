"""Smoke test of benchmarks/small_data_ablation.py: every row's kind (plain recipe, all remedies, low-resource
with back-translation) runs end to end on the toy corpus with a tiny model, and the report is written.

Seconds; no quality assertion beyond "it runs and produces scores".
"""

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def ablation():
    return load_benchmark("small_data_ablation")


def test_rows_run_and_report(ablation, tmp_path):
    data_dir = ablation.smoke_data(tmp_path)
    ablation.prepare(tmp_path, data_dir)
    for name in ("plain", "avg", "lowres_bt"):
        result = ablation.run_row(name, tmp_path, data_dir, minutes=0.05, smoke=True)
        assert 0 <= result["bleu"] <= 100 and 0 <= result["chrf"] <= 100 and result["validation_pairs"] == 8
        assert result["training"]["steps"] > 0 and result["training"]["tokens"] > 0
        assert (tmp_path / name / "result.json").is_file()
    assert result["back_translation"]["mix"]["synthetic_pairs"] > 0
    assert result["back_translation"]["reverse_training"]["steps"] > 0
    report = ablation.write_report(tmp_path, tmp_path / "report.md")
    assert report.count("\n| ") == 1 + 3 and "Back-translation row" in report and ablation.NOTES_MARKER in report
