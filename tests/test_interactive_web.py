"""The local web page of interactive translation: its JSON API, and the whole loop in a real headless chromium."""

import json
import urllib.error
import urllib.request

import pytest
from interactive_browser import browser_missing, chromium_page, serving, wait_for_word, words_shown
from interactive_models import PAIRS, make_model_dir

from bigmodel_hf.interactive import CompletionEngine
from bigmodel_hf.interactive.session import CorrectionLog
from bigmodel_hf.interactive.web import InteractiveApp

SOURCES = [PAIRS[0]["en"], PAIRS[1]["en"]]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return CompletionEngine.from_pretrained(make_model_dir(tmp_path_factory.mktemp("model")))


@pytest.fixture
def app(engine, tmp_path):
    return InteractiveApp(engine, CorrectionLog(tmp_path / "corrections.jsonl", "en", "es"), list(SOURCES))


def post(url: str, action: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url + "api/" + action, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def saved_rows(app) -> list[dict]:
    return [json.loads(line)["translation"] for line in app.log.path.read_text("utf-8").splitlines()]


def test_json_api_runs_the_loop(app, engine):
    with serving(app) as url:
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"<title>bigmodel-hf" in response.read()
        state = json.loads(urllib.request.urlopen(url + "api/state", timeout=30).read())
        assert state["session"] is None and state["queued"] == 2
        session = post(url, "next")["session"]
        assert session["source"] == SOURCES[0] and session["text"] == engine.complete(SOURCES[0]).text
        assert all(0 < w["probability"] <= 1 and not w["accepted"] for w in session["words"])
        first = session["text"].split()
        session = post(url, "accept", {"count": 2})["session"]
        assert session["accepted"] == 2 and [w["accepted"] for w in session["words"][:3]] == [True, True, False]
        session = post(url, "type", {"text": "mi"})["session"]
        assert session["text"].startswith(" ".join(first[:2]) + " mi") and session["typed"] == "mi"
        assert [w["probability"] for w in session["words"][:2]] == [None, None]
        assert len(session["alternatives"]) >= 1
        state = post(url, "approve", {})
        assert state["saved"] == 1 and state["session"]["source"] == SOURCES[1]  # the queue moves on
        post(url, "type", {"text": "Dos hombres"})
        state = post(url, "approve", {"prefix_only": True})
        assert state["saved"] == 2 and state["session"] is None and state["queued"] == 0
        state = post(url, "start", {"source": "  A   cat.  "})
        assert state["session"]["source"] == "A cat."
        for action, body, message in [("accept", {"count": 99}, "cannot accept"), ("dance", {}, "bad request"),
                                      ("start", {"source": " "}, "give a source")]:
            with pytest.raises(urllib.error.HTTPError) as error:
                post(url, action, body)
            assert error.value.code == 400 and message in json.loads(error.value.read())["error"]
    assert saved_rows(app) == [{"en": SOURCES[0], "es": session["text"]}, {"en": SOURCES[1], "es": "Dos hombres"}]


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
def test_the_page_in_headless_chromium(app, engine):
    """Click a word to accept up to it, type a half word, see the re-completion, approve: the JSONL has it."""
    with serving(app) as url, chromium_page() as page:
        page.goto(url)
        page.wait_for_selector("#proposal .word")  # the page asked for the first queued sentence itself
        assert page.input_value("#source") == SOURCES[0]
        first = words_shown(page)
        assert first == engine.complete(SOURCES[0]).text.split()
        page.locator("#proposal .word").nth(1).click()
        page.wait_for_selector("#proposal .word.accepted >> nth=1")
        assert page.locator("#proposal .word.accepted").count() == 2
        page.locator("#typed").press_sequentially("mi", delay=30)
        wait_for_word(page, 2, "mi")
        shown = words_shown(page)
        assert shown[:2] == first[:2] and shown == engine.complete(SOURCES[0], " ".join(first[:2]) + " mi").text.split()
        assert page.locator("#alternatives li").all_inner_texts() == [
            a.text for a in engine.complete(SOURCES[0], " ".join(first[:2]) + " mi").alternatives[1:]]
        page.locator("#typed").press("Tab")  # accepts the half-typed word as the model completed it
        page.wait_for_selector("#proposal .word.accepted >> nth=2")
        assert page.locator("#proposal .word.accepted").count() == 3 and page.input_value("#typed") == ""
        page.click("#approve")
        page.wait_for_function("(source) => document.querySelector('#source').value === source", arg=SOURCES[1])
        assert saved_rows(app) == [{"en": SOURCES[0], "es": " ".join(shown)}]
        # words under the threshold are highlighted; raise it so every word the model chose is
        app.threshold = 1.01
        page.click("#translate")
        page.wait_for_selector("#proposal .word.unsure")
        assert page.locator("#proposal .word.unsure").count() == len(words_shown(page))
