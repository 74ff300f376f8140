"""Serve the interactive page in a thread and drive it with Debian's chromium through playwright.

Used by tests/test_interactive_web.py, and run as a script to take the README screenshot the same way:

    python tests/interactive_browser.py --model outputs/translate_toy_en_es   # -> docs/images/...png

Playwright only drives the installed /usr/bin/chromium; it never downloads a browser.
"""

import argparse
import contextlib
import shutil
import tempfile
import threading
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"Debian's chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    return None


@contextlib.contextmanager
def serving(app, with_server: bool = False, **options):
    """`app` on a free 127.0.0.1 port for the duration (`options` go to make_server); yields the page's
    URL, per-launch token included (`http://127.0.0.1:PORT/?token=...`), and the server itself too when
    `with_server` (for tests that wait on its state rather than on a clock)."""
    from bigmodel_hf.interactive.web import make_server

    server = make_server(app, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield (server.url, server) if with_server else server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium_page(width: int = 1000, height: int = 720):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists()
                                             else shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def words_shown(page) -> list[str]:
    return page.locator("#proposal .word").all_inner_texts()


def wait_for_word(page, index: int, start: str) -> None:
    """Until the proposal's words from `index` on start with `start` (the page redrew after typing)."""
    page.wait_for_function("([i, s]) => Array.from(document.querySelectorAll('#proposal .word')).slice(i)"
                           ".map((w) => w.textContent).join(' ').startsWith(s)", arg=[index, start])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default="docs/images/interactive_translation.png")
    parser.add_argument("--source", default="The old woman sees a small cat in the house.")
    parser.add_argument("--accept", type=int, default=10, help="words to accept by clicking")
    parser.add_argument("--type", default="ca", help="characters typed after the cursor")
    args = parser.parse_args()

    import torch

    from bigmodel_hf.interactive import CompletionEngine
    from bigmodel_hf.interactive.session import CorrectionLog, model_languages
    from bigmodel_hf.interactive.web import InteractiveApp

    torch.set_num_threads(1)
    engine = CompletionEngine.from_pretrained(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        log = CorrectionLog(Path(scratch) / "corrections.jsonl", *model_languages(args.model))
        app = InteractiveApp(engine, log, [args.source, "A second sentence waits in the queue."])
        with serving(app) as url, chromium_page(height=640) as page:
            page.goto(url)
            page.wait_for_selector("#proposal .word")
            page.locator("#proposal .word").nth(args.accept - 1).click()
            page.wait_for_selector(f"#proposal .word.accepted >> nth={args.accept - 1}")
            page.locator("#typed").press_sequentially(args.type)
            wait_for_word(page, args.accept, args.type)
            page.mouse.move(0, 0)  # no hover outline in the picture
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            print(f"wrote {args.out}: {' '.join(words_shown(page))}")


if __name__ == "__main__":
    main()
