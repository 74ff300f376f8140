"""The local web page of interactive translation: its JSON API, and the whole loop in a real headless chromium."""

import json

import pytest
from interactive_browser import browser_missing, chromium_page, serving, wait_for_word, words_shown
from interactive_http import Api
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


def saved_rows(app) -> list[dict]:
    return [json.loads(line)["translation"] for line in app.log.path.read_text("utf-8").splitlines()]


def test_json_api_runs_the_loop(app, engine):
    with serving(app) as url:
        api = Api(url)
        status, headers, page = api.request("GET", url[url.index("/?"):], headers={})
        assert status == 200 and b"<title>bigmodel-hf" in page
        state = api.state()
        assert state["session"] is None and state["queued"] == 2
        session = api.ok("next")["session"]
        assert session["source"] == SOURCES[0] and session["text"] == engine.complete(SOURCES[0]).text
        assert all(0 < w["probability"] <= 1 and not w["accepted"] for w in session["words"])
        first = session["text"].split()
        session = api.ok("accept", {"count": 2})["session"]
        assert session["accepted"] == 2 and [w["accepted"] for w in session["words"][:3]] == [True, True, False]
        session = api.ok("type", {"text": "mi"})["session"]
        assert session["text"].startswith(" ".join(first[:2]) + " mi") and session["typed"] == "mi"
        assert [w["probability"] for w in session["words"][:2]] == [None, None]
        assert len(session["alternatives"]) >= 1
        state = api.ok("approve", {})
        assert state["saved"] == 1 and state["session"]["source"] == SOURCES[1]  # the queue moves on
        api.ok("type", {"text": "Dos hombres"})
        state = api.ok("approve", {"prefix_only": True})
        assert state["saved"] == 2 and state["session"] is None and state["queued"] == 0
        state = api.ok("start", {"source": "  A   cat.  "})
        assert state["session"]["source"] == "A cat."
        for action, body, code, message in [("accept", {"count": 99}, 400, "cannot accept"),
                                            ("dance", {}, 404, "no action 'dance'"),
                                            ("start", {"source": " "}, 400, "give a source")]:
            status, payload = api.post(action, body)
            assert status == code and message in payload["error"]
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


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
def test_a_second_tab_takes_over_and_the_first_stops_in_chromium(app, engine):
    """Two tabs of the page: the older is told (409) and disabled; only the newer approves. The page's
    script runs under the server's Content-Security-Policy without a violation."""
    with serving(app) as url, chromium_page() as page:
        console = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(url)
        page.wait_for_selector("#proposal .word")
        second = page.context.browser.new_page()  # its own tab id, as another tab would have
        second.on("console", lambda message: console.append(message.text))
        second.goto(url)
        second.wait_for_selector("#proposal .word")
        assert second.input_value("#source") == SOURCES[0]  # it took over the sentence the first tab showed
        page.click("#approve")
        page.wait_for_function("() => document.querySelector('#error').textContent.includes('another tab')")
        assert page.is_disabled("#approve") and page.is_disabled("#typed")
        assert not app.log.path.exists()
        second.click("#approve")
        second.wait_for_function("(source) => document.querySelector('#source').value === source", arg=SOURCES[1])
    assert saved_rows(app) == [{"en": SOURCES[0], "es": engine.complete(SOURCES[0]).text}]
    assert not [text for text in console if "Content Security Policy" in text], console
