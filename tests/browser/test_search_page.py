"""The search page (services/gateway/web) in a real browser against a real suite.

Debian's Chromium, driven by Playwright, loads the page from the gateway's HTTP front and
searches a small Caltech-101 gallery with a held-out photo (picked, pasted or dropped): "more
like this", a box drawn on the preview, filters, a bad file, a phone-width screen, a gateway
that wants a token. Skipped with a reason when /usr/bin/chromium or ../shared/data is absent.
Screenshots are left in build/test-artifacts/ (search-page.png, search-page-phone.png).
"""

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from imsearch.client import SearchClient
from imsearch.core.auth import token_digest
from tests.conftest import data_dir_or_skip, start_http_suite
from tests.helpers import REPO, caltech_root

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--no-sandbox",  # the tests run as root here
]
CLASSES = ("airplanes", "Motorbikes", "watch", "sunflower")
GALLERY_PER_CLASS = 8
QUERY_CLASS = "airplanes"
COLLECTION = "efficientnet_lite0"  # the default collection is named after the default model
ARTEFACTS = REPO / "build" / "test-artifacts"
# Metadata is the indexer's: the page must show it as text, never run it.
HOSTILE = '<b>bold</b><img src="/x" onerror="window.hostileRan = true">'
WAIT_MS = 30_000  # this machine is slow: two cores for the browser and the whole suite

pytestmark = pytest.mark.timeout(300)
expect.set_options(timeout=WAIT_MS)

RESULT = '[data-testid="result"]'
RESULTS = '[data-testid="results"]'
ALERT = '[role="alert"]'  # empty (and so hidden) when there is nothing to say


@dataclass(frozen=True)
class Site:
    url: str
    query: Path  # a held-out image of QUERY_CLASS


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: the browser tests run Debian's Chromium (apt install chromium)")
    root = data_dir_or_skip(caltech_root())
    gallery: list[tuple[str, bytes, dict[str, Any]]] = []
    query = None
    for name in CLASSES:
        files = sorted((root / name).glob("*.jpg"))
        assert len(files) > GALLERY_PER_CLASS, f"{root / name} has too few images"
        metadata: dict[str, Any] = {"label": name, **({"caption": HOSTILE} if name == "watch" else {})}
        gallery += [(f"{name}/{f.name}", f.read_bytes(), metadata) for f in files[:GALLERY_PER_CLASS]]
        if name == QUERY_CLASS:
            query = files[GALLERY_PER_CLASS]
    assert query is not None
    suite = start_http_suite(tmp_path_factory.mktemp("suite"))
    try:
        with SearchClient(suite.address) as client:
            assert client.add_images(gallery) == len(gallery)
        assert suite.gateway.http_url is not None
        yield Site(suite.gateway.http_url, query)
    finally:
        suite.stop()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@contextmanager
def watched_page(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh page on `url`; it must raise no script error and fetch nothing from elsewhere."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    script_errors: list[str] = []
    elsewhere: list[str] = []
    opened.on("pageerror", lambda error: script_errors.append(str(error)))

    def note(request: Request) -> None:
        if not request.url.startswith((url, "data:", "blob:")):
            elsewhere.append(request.url)

    opened.on("request", note)
    opened.goto(url)
    yield opened
    context.close()
    assert script_errors == []
    assert elsewhere == []


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    with watched_page(browser, site.url) as opened:
        # The collections are listed on load; pick the one the gallery went into.
        expect(opened.locator(f'#collection option[value="{COLLECTION}"]')).to_be_attached()
        opened.get_by_label("Collection", exact=True).select_option(COLLECTION)
        yield opened


def search_photo(page: Page, photo: Path) -> None:
    page.set_input_files('input[type="file"]', photo)
    expect(page.get_by_test_id("query-title")).to_have_text("Results for your photo")
    expect(page.get_by_test_id("results").locator(RESULT).first).to_be_visible()
    expect(page.locator("#results-section")).to_have_attribute("aria-busy", "false")


def is_search(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith(":search")


def json_body(request: Request) -> dict[str, Any]:
    body = request.post_data_json
    assert isinstance(body, dict), f"{request.url}: the body is not a JSON object"
    return body


def test_a_photo_finds_its_class_and_more_like_this_follows(page: Page, site: Site) -> None:
    option = page.locator(f'#collection option[value="{COLLECTION}"]')
    expect(option).to_contain_text(
        f"{COLLECTION} — efficientnet_lite0, {len(CLASSES) * GALLERY_PER_CLASS} images"
    )
    with page.expect_request(is_search) as first:
        search_photo(page, site.query)
    body = json_body(first.value)
    assert body["topK"] == 12 and body["index"] == "INDEX_KIND_HNSW" and body["withThumbnails"] is True
    assert body["image"] and "box" not in body and "where" not in body

    cards = page.locator(f"{RESULTS} {RESULT}")
    expect(cards).to_have_count(12)
    top = cards.first
    assert top.get_attribute("data-label") == QUERY_CLASS
    top_id = top.get_attribute("data-id")
    assert top_id and top_id.startswith(f"{QUERY_CLASS}/")
    expect(top.locator(".score")).to_have_text(re.compile(r"^-?\d\.\d{3}$"))
    expect(top.get_by_role("button", name=f"More like this: {top_id}")).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text(re.compile(r"efficientnet_lite0.*index hnsw.*\d+ ms"))

    with page.expect_request(is_search) as more:
        top.click()
    body = json_body(more.value)
    assert body["positiveIds"] == [top_id] and "image" not in body
    expect(page.get_by_test_id("query-title")).to_have_text(f"More like {top_id}")
    expect(page.locator("#results-section")).to_have_attribute("aria-busy", "false")
    # Re-rendered: an example given by id is left out of its own results.
    expect(cards.first).not_to_have_attribute("data-id", top_id)
    expect(cards).to_have_count(12)
    assert cards.first.get_attribute("data-label") == QUERY_CLASS
    expect(page.locator(ALERT)).to_have_text("")

    page.mouse.move(0, 0)  # no hover effect in the picture
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "search-page.png", full_page=True)


def test_a_file_that_is_not_an_image_shows_the_servers_message(
    page: Page, site: Site, tmp_path: Path
) -> None:
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"these bytes are no picture at all\n" * 40)
    with page.expect_response(lambda r: is_search(r.request)) as answer:
        page.set_input_files('input[type="file"]', bad)
    assert answer.value.status == 400
    alert = page.locator(ALERT)
    expect(alert).to_contain_text("not a decodable image")
    expect(page.locator("#results-section")).to_have_attribute("aria-busy", "false")
    expect(page.get_by_test_id("status")).to_have_text("The search failed.")
    expect(page.locator(RESULT)).to_have_count(0)

    # The page goes on working: a good photo clears the message and finds results.
    search_photo(page, site.query)
    expect(alert).to_have_text("")
    assert page.locator(RESULT).first.get_attribute("data-label") == QUERY_CLASS


def test_a_box_drawn_on_the_preview_is_sent_and_can_be_cleared(page: Page, site: Site) -> None:
    search_photo(page, site.query)
    preview = page.get_by_test_id("preview")
    shown = preview.bounding_box()
    assert shown is not None and shown["width"] > 50 and shown["height"] > 50
    left, top, width, height = shown["x"], shown["y"], shown["width"], shown["height"]

    with page.expect_response(lambda r: is_search(r.request)) as boxed:
        page.mouse.move(left + 0.2 * width, top + 0.25 * height)
        page.mouse.down()
        page.mouse.move(left + 0.5 * width, top + 0.5 * height, steps=5)
        # Past the image's corner: the box is clamped to it.
        page.mouse.move(left + width + 40, top + height + 40, steps=5)
        page.mouse.up()
    assert boxed.value.ok
    body = json_body(boxed.value.request)
    assert body["image"]
    box = body["box"]
    assert box["x"] == pytest.approx(0.2, abs=0.02) and box["y"] == pytest.approx(0.25, abs=0.02)
    assert box["x"] + box["width"] <= 1 and box["y"] + box["height"] <= 1
    assert box["width"] == pytest.approx(0.8, abs=0.02) and box["height"] == pytest.approx(0.75, abs=0.02)
    expect(page.locator(RESULT).first).to_be_visible()
    expect(page.locator(ALERT)).to_have_text("")

    with page.expect_request(is_search) as cleared:
        page.get_by_role("button", name="Clear box").click()
    assert "box" not in json_body(cleared.value)
    expect(page.get_by_role("button", name="Clear box")).to_be_hidden()


def test_filters_index_and_top_k_by_keyboard(page: Page, site: Site) -> None:
    search_photo(page, site.query)
    page.get_by_label("Index", exact=True).select_option("INDEX_KIND_EXACT")
    page.get_by_label("Results", exact=True).fill("5")
    page.get_by_label("Filter key").fill("label")
    page.get_by_label("Filter value").fill("watch")
    with page.expect_request(is_search) as filtered:
        page.get_by_label("Filter value").press("Enter")  # submits the form
    body = json_body(filtered.value)
    assert body["where"] == {"must": [{"key": "label", "equals": "watch"}]}
    assert body["topK"] == 5 and body["index"] == "INDEX_KIND_EXACT"
    cards = page.locator(RESULT)
    expect(cards.first).to_have_attribute("data-label", "watch")
    expect(cards).to_have_count(5)
    assert {cards.nth(i).get_attribute("data-label") for i in range(5)} == {"watch"}
    expect(page.get_by_test_id("status")).to_contain_text("index exact")
    expect(cards.first.locator(".meta")).to_contain_text(HOSTILE)
    assert page.locator(f"{RESULTS} b").count() == 0
    assert page.evaluate("window.hostileRan") is None

    # Enter on a card's button runs "more like this" with the same filter.
    second_id = cards.nth(1).get_attribute("data-id")
    with page.expect_request(is_search) as more:
        cards.nth(1).get_by_role("button").focus()
        page.keyboard.press("Enter")
    body = json_body(more.value)
    assert body["positiveIds"] == [second_id] and body["where"]["must"][0]["equals"] == "watch"
    expect(page.get_by_test_id("query-title")).to_have_text(f"More like {second_id}")
    expect(cards.first).to_have_attribute("data-label", "watch")


def test_a_phone_width_screen_gets_two_columns_and_no_sideways_scroll(page: Page, site: Site) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    search_photo(page, site.query)
    cards = page.locator(RESULT)
    expect(cards).to_have_count(12)
    lefts = set()
    for i in range(4):
        shown = cards.nth(i).bounding_box()
        assert shown is not None and shown["x"] >= 0 and shown["x"] + shown["width"] <= 390
        lefts.add(round(shown["x"]))
    assert len(lefts) == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "search-page-phone.png", full_page=True)


# A file handed to the page as a paste (clipboard) or a drop (drag and drop) would give it.
HAND_OVER = """([how, data, name]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
  if (how === "paste") {
    document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
    return;
  }
  const zone = document.querySelector('[data-testid="drop-zone"]');
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""


@pytest.mark.parametrize("how", ["paste", "drop"])
def test_a_pasted_or_dropped_photo_is_searched(page: Page, site: Site, how: str) -> None:
    data = base64.b64encode(site.query.read_bytes()).decode()
    with page.expect_request(is_search) as searched:
        page.evaluate(HAND_OVER, [how, data, site.query.name])
    assert json_body(searched.value)["image"] == data
    expect(page.get_by_test_id("query-title")).to_have_text("Results for your photo")
    expect(page.get_by_test_id("preview")).to_be_visible()
    expect(page.locator(RESULT).first).to_have_attribute("data-label", QUERY_CLASS)


TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def guarded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second suite whose gateway wants a bearer token (role search) on every call."""
    folder = tmp_path_factory.mktemp("guarded")
    auth_file = folder / "auth"
    auth_file.write_text(f"search {token_digest(TOKEN)}\n")
    suite = start_http_suite(folder / "data", auth_file=auth_file)
    try:
        assert suite.gateway.http_url is not None
        yield suite.gateway.http_url
    finally:
        suite.stop()


def test_a_guarded_gateway_asks_for_a_token_and_gets_it(browser: Browser, guarded_url: str) -> None:
    with watched_page(browser, guarded_url) as page:
        expect(page.locator(ALERT)).to_contain_text("enter an access token")
        token = page.get_by_label("Bearer token")
        expect(token).to_be_visible()
        expect(token).to_be_focused()
        with page.expect_response(lambda r: r.url.endswith("/v1/collections")) as listed:
            token.fill(TOKEN)
            token.press("Tab")  # a change event: the collections are listed again
        assert listed.value.ok
        assert listed.value.request.headers["authorization"] == f"Bearer {TOKEN}"
        expect(page.locator(f'#collection option[value="{COLLECTION}"]')).to_be_attached()
        expect(page.locator(ALERT)).to_have_text("")

        # Kept for the tab: a reload lists the collections at once.
        page.reload()
        expect(page.locator(f'#collection option[value="{COLLECTION}"]')).to_be_attached()
        expect(page.locator(ALERT)).to_have_text("")
        assert page.evaluate("sessionStorage.getItem('imsearch.token')") == TOKEN
