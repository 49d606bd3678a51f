"""The preview of the lapsed-buyers campaign on the demo shop, opened in a real headless Chromium:
each sample's email shows three recommended products, with their pictures loaded from the shop
(here a server on 127.0.0.1), names, prices and links. The screenshot goes to NUDGE_SCREENSHOTS
(a folder) when it is set, to be looked at; docs/recommendations.png came from here."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from tests.support.browser import open_page, screenshot

AT = "2026-06-01T09:00:00+00:00"
COLOURS = {
    "shoes": "#2563eb",
    "knitwear": "#db2777",
    "outerwear": "#059669",
    "bags": "#d97706",
    "accessories": "#7c3aed",
}


def nudge(workspace_dir, *args):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args])


class Pictures(BaseHTTPRequestHandler):
    """A product picture for /images/ID.svg: the product's name on its category's colour."""

    names: ClassVar[dict[str, tuple[str, str]]] = {}
    served: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        product = self.path.rsplit("/", 1)[-1].removesuffix(".svg")
        name, category = self.names.get(product, ("?", "shoes"))
        words = "".join(
            f'<text x="160" y="{150 + 34 * i}" text-anchor="middle">{word}</text>'
            for i, word in enumerate(name.split())
        )
        body = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="320" viewBox="0 0 320 320">'
            f'<rect width="320" height="320" fill="{COLOURS[category]}"/>'
            f'<g fill="#ffffff" font-family="Helvetica, Arial, sans-serif" font-size="28">{words}</g></svg>'
        ).encode()
        self.served.append(product)
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def pictures():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pictures)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_preview_shows_three_recommended_products_with_their_pictures(workspace_dir, tmp_path, pictures):
    assert nudge(workspace_dir, "demo", "--at", AT).exit_code == 0  # the demo as `nudge demo` makes it
    with sqlite3.connect(workspace_dir / "nudge.db") as db:
        catalogue = db.execute("SELECT id, name, category FROM products").fetchall()
    Pictures.names = {pid: (name, category) for pid, name, category in catalogue}
    Pictures.served.clear()
    # The shop's pictures move to where this test serves them: `nudge import products` updates the
    # column a file names and leaves the rest of each product as it was.
    feed = tmp_path / "pictures.jsonl"
    feed.write_text(
        "".join(json.dumps({"id": pid, "image_url": f"{pictures}/images/{pid}.svg"}) + "\n" for pid, *_ in catalogue)
    )
    assert nudge(workspace_dir, "import", "products", str(feed)).exit_code == 0
    page_file = tmp_path / "recommendations.html"
    result = nudge(workspace_dir, "preview", "lapsed-buyers", "--at", AT, "--samples", "1", "-o", str(page_file))
    assert result.exit_code == 0, result.output
    page = open_page(page_file)
    assert page.console == [], page.console
    frames = [unescape(f) for f in re.findall(r'<iframe [^>]*srcdoc="([^"]*)"', page.dom)]
    assert frames, "no email frame on the page"
    for frame in frames:  # desktop and phone
        cells = re.findall(r'<td class="product".*?</td>', frame, re.S)
        assert len(cells) == 3
        for cell in cells:
            assert re.search(r'<img src="http://127\.0\.0\.1:\d+/images/demo-[a-z]{3}-\d{3}\.svg"', cell)
            assert re.search(r'<a href="https://shop\.example/products/demo-', cell)
            assert re.search(r"<strong[^>]*>\$\d+\.\d\d</strong>", cell)
    shown = set(re.findall(r"/images/(demo-[a-z]{3}-\d{3})\.svg", frames[0]))
    picture = screenshot(page_file, tmp_path / "recommendations.png", width=1280, height=1500)
    assert shown <= set(Pictures.served)  # the browser loaded each product's picture
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = os.environ.get("NUDGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / picture.name).write_bytes(picture.read_bytes())
