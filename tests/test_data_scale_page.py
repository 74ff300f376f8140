"""The data-scale results page states the issue's ratios from what was measured (no measuring here)."""

from benchmark_scripts import load_benchmark


def arm(wall, anon, rss, clean, tokenize):
    stages = [{"stage": "load", "seconds": 1.0}, {"stage": "clean", "seconds": clean},
              {"stage": "tokenizer", "seconds": 1.0}, {"stage": "tokenize", "seconds": tokenize}]
    return [{"first_step_wall": wall, "first_step_cpu": wall, "peak_rss_mb": rss, "peak_anon_mb": anon, "stages": stages}]


def test_page_states_memory_time_per_pair_and_training_ratios(tmp_path, monkeypatch):
    data_scale = load_benchmark("data_scale")
    monkeypatch.setattr(data_scale, "RESULTS", tmp_path / "page.md")
    measured = {
        "30000": {"map_1_worker": arm(10, 600, 800, 1, 2), "map_2_workers": arm(8, 600, 800, 0.5, 1)},
        "300000": {"map_1_worker": arm(60, 630, 900, 8, 30)},
        "3000000": {"map_1_worker": arm(600, 720, 2000, 92, 306)},
        "training_runs": {
            "30000": {"steps": 900, "epochs": 30.0, "cpu_minutes": 30.0, "target_tokens_per_cpu_s": 1000.0,
                      "tokens_per_cpu_s": 2000.0, "validation_bleu_200_greedy": 20.0, "peak_rss_mb": 1500.0,
                      "data_stages_s": 6.0},
            "3000000": {"steps": 905, "epochs": 0.3, "cpu_minutes": 30.0, "target_tokens_per_cpu_s": 990.0,
                        "tokens_per_cpu_s": 1980.0, "validation_bleu_200_greedy": 19.0, "peak_rss_mb": 1700.0,
                        "data_stages_s": 600.0}},
    }
    data_scale.write_page(measured)
    page = (tmp_path / "page.md").read_text("utf-8")
    assert "peak anonymous RSS, map_1_worker: 600 MB at 30,000 -> 720 MB at 3,000,000 pairs (1.20x" in page
    assert "mapped Arrow pages included), map_1_worker: 800 MB at 30,000 -> 2000 MB at 3,000,000 pairs (2.50x" in page
    # (1 + 8 + 1 + 30) s / 300k = 133 us; (1 + 92 + 1 + 306) s / 3M = 133 us
    assert "133 us at 300,000 -> 133 us at 3,000,000 pairs (1.00x" in page
    assert "1 vs 2 workers: 3.0 vs 1.5 (2.00x" in page
    assert "largest corpus vs smallest: 0.990x" in page
    assert "| 3,000,000 | 30.0 | 905 | 0.30 | 990 | 1980 | 19.00 | 1700 | 600.0 |" in page
