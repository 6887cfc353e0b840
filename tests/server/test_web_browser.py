"""The workbench end to end in a real browser (issue 14), on a real `hearme serve` over the
demo study: sign in; two coders code ten answers each with the keyboard alone; the
evaluator sees the agreement and the theme table change, resolves a discrepancy in one
click and publishes a release; a reader opens it; sign-out ends the session for good.
axe-core checks every screen; each is photographed (HEARME_SCREENSHOTS=<dir> keeps them).
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api
from playwright.sync_api import expect

from service.database import Database
from service.demo import load_demo, publish_demo_release
from service.settings import Settings
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, axe_script, serious_violations
from tests.server.conftest import Server, StartServer

# Assertions on the page retry (Playwright's `expect`) for up to 20 s, so a loaded machine
# that renders late does not fail the test, and a page that never shows the state does.
expect.set_options(timeout=20_000)

SURVEY = "smhm-professionals"
QUESTION = "trust_actions"


@pytest.fixture
def demo_server(start_server: StartServer, tmp_path: Path) -> Server:
    """`hearme demo`'s data (loaded by the same service calls), served by `hearme serve`."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    settings = Settings(database_url=url)
    from api.cli import _migrate

    _migrate(settings)
    database = Database(settings.model_copy(update={"db_statement_timeout": 0}))
    try:
        with database.session() as session:
            survey_id, _ = load_demo(session)
            publish_demo_release(session, survey_id, min_cell=5, audit_seconds=5.0)
    finally:
        database.dispose()
    return start_server(url)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Screens:
    """Checks each screen with axe-core and photographs it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.script = axe_script()
        self.problems: list[str] = []

    def check(self, page: Any, name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(self.directory / f"workbench-{name}.png"), full_page=True)
        self.problems += [f"{name}: {v}" for v in serious_violations(page, self.script)]


def sign_in(context: Any, base: str, key: str, screens: Screens | None = None) -> Any:
    """Sign in with the keyboard alone: the key field has focus; Enter submits."""
    page = context.new_page()
    page.goto(f"{base}/app/sign-in")
    if screens:
        screens.check(page, "sign-in")
    # The page gives the key field focus itself (autofocus); on a loaded machine that can
    # land after `goto` returns, and keys typed before it went nowhere (a 401).
    page.wait_for_function("document.activeElement && document.activeElement.id === 'key'")
    page.keyboard.type(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{base}/app/", page.content()[:500]
    return page


def code_ten(page: Any, base: str, keys: list[str]) -> None:
    """Ten answers, each: its category's key, then Enter (save and next)."""
    page.goto(f"{base}/app/surveys/{SURVEY}/code/{QUESTION}")
    for done, key in enumerate(keys):
        expect(page.locator("#progress")).to_contain_text(f"{done} of ")
        page.keyboard.press(key)
        expect(page.locator(f'input[data-key="{key}"]')).to_be_checked()
        with page.expect_navigation():
            page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_contain_text(f"{len(keys)} of ")


def theme_table(page: Any, base: str) -> str:
    page.goto(f"{base}/app/surveys/{SURVEY}/dashboard")
    return str(page.locator(f"#t-{QUESTION}").locator("xpath=..").locator("table").inner_text())


def test_the_workbench_end_to_end(demo_server: Server, browser: Any, tmp_path: Path) -> None:
    base = demo_server.base_url
    shots = Path(os.environ.get("HEARME_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    screens = Screens(shots)
    keys = {
        name: demo_server.create_key(name=name, role=role)
        for name, role in (
            ("eva", "evaluator"),
            ("coder-1", "coder"),
            ("coder-2", "coder"),
            ("rita", "reader"),
        )
    }
    evaluator_context = browser.new_context(viewport={"width": 1280, "height": 900})
    evaluator = sign_in(evaluator_context, base, keys["eva"], screens)
    screens.check(evaluator, "home")
    before = theme_table(evaluator, base)

    for name, chosen in (("coder-1", ["1"] * 10), ("coder-2", ["1"] * 5 + ["2"] * 5)):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        coder = sign_in(context, base, keys[name])
        if name == "coder-1":
            coder.goto(f"{base}/app/surveys/{SURVEY}/code/{QUESTION}")
            screens.check(coder, "coding")
        code_ten(coder, base, chosen)
        # Blind: the other coder's codes appear nowhere a coder can go.
        review = coder.goto(f"{base}/app/surveys/{SURVEY}/review/{QUESTION}")
        assert review is not None
        assert review.status == 403
        context.close()

    after = theme_table(evaluator, base)
    assert after != before  # the ten answers now disputed leave the effective sets
    screens.check(evaluator, "dashboard")

    evaluator.goto(f"{base}/app/surveys/{SURVEY}/review/{QUESTION}?coders=coder-1,coder-2")
    expect(evaluator.locator("#overall")).to_contain_text(
        "Over 10 answers both coded: 50.0% identical sets"
    )
    expect(evaluator.locator("article.discrepancy")).to_have_count(5)
    screens.check(evaluator, "agreement")
    first = evaluator.locator("article.discrepancy").first
    expect(first.locator(".badge")).to_have_count(0)
    first.get_by_role("button", name="Agree with coder-1").focus()
    with evaluator.expect_navigation():
        evaluator.keyboard.press("Enter")
    expect(evaluator.locator("article.discrepancy").first.locator(".badge")).to_have_text(
        "resolved"
    )
    resolved = theme_table(evaluator, base)
    assert resolved != after  # the consensus counts again

    evaluator.goto(f"{base}/app/surveys/{SURVEY}/dashboard")
    evaluator.fill("#release-id", "web-release")
    evaluator.fill("#release-title", "Published from the workbench")
    with evaluator.expect_navigation():
        evaluator.locator("#release-title").press("Enter")
    assert evaluator.url.endswith(f"/app/surveys/{SURVEY}/releases/web-release")
    assert "Published from the workbench" in evaluator.content()

    reader_context = browser.new_context(viewport={"width": 1280, "height": 900})
    reader = sign_in(reader_context, base, keys["rita"])
    expect(reader.get_by_role("link", name="Published from the workbench")).to_have_count(1)
    reader.get_by_role("link", name="Published from the workbench").click()
    expect(reader.locator("h1")).to_contain_text("Published from the workbench")
    screens.check(reader, "release")
    dashboard = reader.goto(f"{base}/app/surveys/{SURVEY}/dashboard")
    assert dashboard is not None
    assert dashboard.status == 403
    reader_context.close()

    cookie = next(c for c in evaluator_context.cookies() if c["name"] == "hearme_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    evaluator.goto(f"{base}/app/")
    with evaluator.expect_navigation():
        evaluator.get_by_role("button", name="Sign out").click()
    assert evaluator.url == f"{base}/app/sign-in"
    replay = browser.new_context()
    replay.add_cookies([{**cookie}])
    page = replay.new_page()
    page.goto(f"{base}/app/")
    assert page.url == f"{base}/app/sign-in"  # the old cookie opens nothing
    assert not re.search(r"hm_[A-Za-z0-9_-]{20,}", page.content())
    assert screens.problems == [], "\n".join(screens.problems)
