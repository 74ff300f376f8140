"""A multilingual model's direction in the interactive engine, the web API and the `bigmodel-hf` command
(issue 20): the language token leads the decoder prefix, encoder outputs are kept per direction, the page's
language field accepts only the languages the model writes, and the CLI flags choose the direction."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bigmodel_hf.cli import main
from bigmodel_hf.interactive import CompletionEngine
from bigmodel_hf.interactive.api_fields import ApiError
from bigmodel_hf.interactive.session import CorrectionLog
from bigmodel_hf.interactive.web import InteractiveApp
from interactive_browser import browser_missing, chromium_page, serving, words_shown
from interactive_http import Api
from interactive_models import make_model_dir
from multilingual_models import make_multilingual_dir

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "the cat sees a dog"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_multilingual_dir(tmp_path_factory.mktemp("multilingual"), max_length=10)


@pytest.fixture(scope="module")
def lang_to_id(folder):
    return json.loads((folder / "config.json").read_text())["lang_to_id"]


def spy(engine) -> tuple[list, list]:
    """(decoder prefixes given to generate, encoder runs) of everything the engine does from now on."""
    prefixes, encoder_runs = [], []
    generate, encoder = engine.model.generate, engine.model.get_encoder()
    forward = encoder.forward

    def recording_generate(*args, **kwargs):
        prefixes.append(kwargs["decoder_input_ids"][0].tolist() if "decoder_input_ids" in kwargs else
                        ("forced_bos_token_id", kwargs.get("forced_bos_token_id")))
        return generate(*args, **kwargs)

    def recording_forward(*args, **kwargs):
        encoder_runs.append(1)
        return forward(*args, **kwargs)

    engine.model.generate, encoder.forward = recording_generate, recording_forward
    return prefixes, encoder_runs


def test_the_engine_puts_the_language_token_first_and_keeps_encoder_outputs_per_direction(folder, lang_to_id):
    engine = CompletionEngine.from_pretrained(folder, device="cpu", source_lang="en", target_lang="de")
    prefixes, encoder_runs = spy(engine)
    german = engine.complete(SOURCE)
    typed = engine.complete(SOURCE, "the cat ")      # whole typed words come after the language token
    spanish = engine.complete(SOURCE, target_lang="es")
    engine.complete(SOURCE, "the ", target_lang="es")
    start = engine.start_id
    assert prefixes[0] == [start, lang_to_id["de"]]
    assert prefixes[1][:2] == [start, lang_to_id["de"]] and len(prefixes[1]) > 2
    assert prefixes[2] == [start, lang_to_id["es"]] and prefixes[3][:2] == [start, lang_to_id["es"]]
    assert german.text != spanish.text and typed.text.startswith("the cat")
    assert lang_to_id["de"] not in german.token_ids  # the token is the prefix's, not the proposal's
    # language tokens spell nothing: never offered while a typed word is spelled, never shown as text
    assert all(engine.surfaces[index] == b"" for index in lang_to_id.values())
    # one encoder run per (direction, source): de's states were reused for the typed prefix, es got its own
    assert len(encoder_runs) == 2
    assert sorted(str(legs[0]) for legs, _ in engine._encoded) == ["en-de", "en-es"]


def test_the_engine_refuses_a_language_the_model_does_not_write(folder):
    with pytest.raises(ValueError, match=r"target_lang='ja'.*writes de, en, es, fr") as error:
        CompletionEngine.from_pretrained(folder, device="cpu", target_lang="ja")
    assert "\n" not in str(error.value)
    engine = CompletionEngine.from_pretrained(folder, device="cpu", target_lang="de")
    with pytest.raises(ValueError, match="target_lang='ja'"):
        engine.complete(SOURCE, target_lang="ja")


def test_the_engine_pivots_the_source_then_completes_in_the_target(folder, lang_to_id):
    engine = CompletionEngine.from_pretrained(folder, device="cpu", source_lang="es", target_lang="fr", pivot="en")
    prefixes, encoder_runs = spy(engine)
    engine.complete(SOURCE)
    engine.complete(SOURCE, "le ")
    assert engine.route().kind == "pivot"
    # once into English (generate with forced __en__), then every completion starts with __fr__
    assert prefixes[0] == ("forced_bos_token_id", lang_to_id["en"])
    assert [prefix[:2] for prefix in prefixes[1:]] == [[engine.start_id, lang_to_id["fr"]]] * 2
    assert len(encoder_runs) == 2  # the source for the pivot pass, the English text for the completions
    assert [str(leg) for leg in next(iter(engine._encoded))[0]] == ["es-en", "en-fr"]


def test_the_web_api_offers_and_accepts_only_the_model_s_target_languages(folder, tmp_path):
    engine = CompletionEngine.from_pretrained(folder, device="cpu", source_lang="en", target_lang="de")
    app = InteractiveApp(engine, CorrectionLog(tmp_path / "c.jsonl", "en", "de"), [SOURCE])
    with serving(app) as url:
        api = Api(url)
        state = api.ok("next")
        assert state["languages"]["targets"] == ["de", "es", "fr"]  # en is the source: not offered
        assert state["languages"]["target_lang"] == "de" and "en-de" in state["languages"]["route"]
        german = state["session"]["text"]
        for body in ({"target_lang": "ja"}, {"target_lang": "en"}, {"target_lang": 5}, {"target_lang": "d" * 5000},
                     {}, {"target_lang": "de", "other": 1}):
            status, payload = api.post("language", body)
            assert status == 400, (body, payload)
        assert api.post("start", {"source": SOURCE, "target_lang": "xx"})[0] == 400
        assert api.state()["session"]["text"] == german  # nothing changed
        state = api.ok("language", {"target_lang": "es"})
        assert state["languages"]["target_lang"] == "es" and state["session"]["text"] == engine.complete(
            SOURCE, target_lang="es").text
        api.ok("approve", {"text": "el gato"})
    assert [json.loads(line)["translation"] for line in app.log.path.read_text().splitlines()] == [
        {"en": SOURCE, "es": "el gato"}]


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
def test_the_page_s_language_selector_in_headless_chromium(folder, tmp_path):
    """The selector lists the languages the model writes (not its source), and choosing one re-proposes
    the open sentence in it; a bilingual model's page shows no selector."""
    engine = CompletionEngine.from_pretrained(folder, device="cpu", source_lang="en", target_lang="de")
    app = InteractiveApp(engine, CorrectionLog(tmp_path / "c.jsonl", "en", "de"), [SOURCE])
    with serving(app) as url, chromium_page() as page:
        page.goto(url)
        page.wait_for_selector("#proposal .word")
        assert page.is_visible("#target-lang") and page.input_value("#target-lang") == "de"
        assert page.locator("#target-lang option").all_inner_texts() == ["de", "es", "fr"]
        assert words_shown(page) == engine.complete(SOURCE).text.split()
        spanish = engine.complete(SOURCE, target_lang="es").text.split()
        page.select_option("#target-lang", "es")
        page.wait_for_function("() => document.querySelector('#route').textContent.startsWith('en-es')")
        assert words_shown(page) == spanish
    bilingual = CompletionEngine.from_pretrained(make_model_dir(tmp_path / "bilingual"), device="cpu")
    app = InteractiveApp(bilingual, CorrectionLog(tmp_path / "b.jsonl", "en", "es"), [SOURCE])
    with serving(app) as url, chromium_page() as page:
        page.goto(url)
        page.wait_for_selector("#proposal .word")
        assert not page.is_visible("#target-lang")


def test_the_web_api_of_a_bilingual_model_offers_no_language(tmp_path):
    engine = CompletionEngine.from_pretrained(make_model_dir(tmp_path / "bilingual"), device="cpu")
    app = InteractiveApp(engine, CorrectionLog(tmp_path / "c.jsonl", "en", "es"), [SOURCE])
    assert app.state()["languages"] == {"targets": [], "target_lang": None}
    with pytest.raises(ApiError, match="choose one of: none"):
        app.handle("language", {"target_lang": "es"}, "tab")


def run_cli(argv, capsys, stdin: str = "") -> tuple[int, str, str]:
    old_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        main(argv)
        code = 0
    except SystemExit as exit:
        code = 1 if isinstance(exit.code, str) else exit.code or 0
        if isinstance(exit.code, str):
            print(exit.code, file=sys.stderr)
    finally:
        sys.stdin = old_stdin
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_translate_flags_choose_the_direction(folder, capsys, caplog):
    base = ["translate", "--model", str(folder), "--device", "cpu", SOURCE, "a small house"]
    code, german, _ = run_cli([*base, "--target_lang", "de"], capsys)
    assert code == 0 and len(german.splitlines()) == 2
    code, spanish, _ = run_cli([*base, "--source_lang", "en", "--target_lang", "es"], capsys)
    assert code == 0 and spanish != german
    # the route is a warning of bigmodel_hf.translator (on stderr in a real process, see the next test)
    code, _, _ = run_cli([*base, "--source_lang", "es", "--target_lang", "fr", "--pivot", "en"], capsys)
    assert code == 0 and "es-en -> en-fr" in caplog.text and "pivot" in caplog.text
    code, _, _ = run_cli([*base, "--source_lang", "es", "--target_lang", "fr"], capsys)
    assert code == 0 and "es-fr: a direction the model was not trained on" in caplog.text and "zero-shot" in caplog.text
    code, out, err = run_cli([*base, "--target_lang", "ja"], capsys)
    assert code == 1 and out == "" and err.strip().count("\n") == 0
    assert err.startswith("bigmodel-hf translate: target_lang='ja'") and "writes de, en, es, fr" in err
    code, _, err = run_cli(base, capsys)
    assert code == 1 and "choose one with target_lang (--target_lang)" in err


def test_a_real_translate_process_says_it_pivots_on_stderr(folder, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, "-m", "bigmodel_hf.cli", "translate", "--model", str(folder), "--device",
                           "cpu", "--source_lang", "es", "--target_lang", "fr", "--pivot", "en", SOURCE],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 1
    assert "es-en -> en-fr: a direction the model was not trained on, translated through a pivot language" in done.stderr


@pytest.mark.parametrize("command", ["serve", "translate --interactive"])
def test_interactive_commands_refuse_an_unknown_language_before_loading(folder, tmp_path, capsys, command):
    argv = [*command.split(), *(["--port", "0"] if command == "serve" else []), "--model", str(folder),
            "--corrections", str(tmp_path / "c.jsonl"), "--target_lang", "ja"]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and err.strip().count("\n") == 0 and "writes de, en, es, fr" in err
    assert not (tmp_path / "c.jsonl").exists()
    code, _, err = run_cli([*argv[:-1], "es", "--adapt"], capsys)
    assert code == 1 and "--adapt learns one direction" in err


def test_translate_interactive_completes_and_logs_in_the_chosen_direction(folder, tmp_path, capsys):
    corrections = tmp_path / "c.jsonl"
    code, out, err = run_cli(["translate", "--interactive", "--model", str(folder), "--device", "cpu",
                              "--corrections", str(corrections), "--target_lang", "fr", SOURCE], capsys,
                             stdin="le chat\n/end\n")
    assert code == 0, err
    assert "zero-shot" not in err and "pivot" not in err  # en-fr was trained: nothing to say
    # en is the only language the model translates into fr from: the corrections name it
    assert [json.loads(line)["translation"] for line in corrections.read_text().splitlines()] == [
        {"en": SOURCE, "fr": "le chat"}]
    code, _, err = run_cli(["translate", "--interactive", "--model", str(folder), "--device", "cpu",
                            "--corrections", str(corrections), "--source_lang", "es", "--target_lang", "fr",
                            "--pivot", "en", SOURCE], capsys, stdin="/quit\n")
    assert code == 0 and "es-en -> en-fr: a direction the model was not trained on, translated through a pivot" in err
