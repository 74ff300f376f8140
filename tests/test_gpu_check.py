"""benchmarks/gpu_check.py's CPU fallback, so the one-command GPU check cannot rot between GPU sessions."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_cpu_fallback_writes_every_section(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu_fallback",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = (tmp_path / "gpu_cpu_fallback.md").read_text("utf-8")
    for title in ("Environment", "Tests marked gpu", "Host-device synchronisation", "Speed against MarianMTModel",
                  "Translation recipe on bible_en_es, defaults"):
        assert f"## {title}" in page
    assert "Failed" not in page
    assert "| BigModelForSeq2SeqLM |" in page and "| MarianMTModel |" in page
    assert "exited 0" in page.split("## Translation recipe")[1]  # the recipe ran to the end
    assert str(ROOT) not in page  # no absolute paths of this machine on a page meant for the repository
