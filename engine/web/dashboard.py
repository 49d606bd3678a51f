"""The read-only dashboard on `nudge serve` at /ui/ (config.yaml `ui: {password_env: NAME}`),
behind HTTP Basic auth with the password from that variable (any user name).

GET /ui/                          the campaigns: enabled, schedule, next and last occurrence, sparkline
GET /ui/campaigns/NAME[?range=]   one campaign's report (engine.reports.dashboard_html)
GET /ui/campaigns/NAME/preview    what it would send now: the preview's own page (engine.reports.preview)
GET /ui/customers?q=  /ui/customer?id=   customer search, and one customer's timeline
GET /ui/deliveries?campaign=&status=&customer=&since=   the ledger, newest first

Every /ui/ answer without the right password is 401, whatever the path or method: the ingestion
write key (a user name with no password) opens nothing here. Pages are never cached, never
framed by another site, and their Content-Security-Policy lets them load nothing from anywhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from engine.core.errors import RuntimeFailure, UserInputError
from engine.delivery.reloading import signature
from engine.reports.dashboard_html import Frame, campaign_page, campaigns_page, message_page
from engine.reports.dryrun import dry_run
from engine.reports.preview import ASSETS as PREVIEW_ASSETS
from engine.reports.preview import render_preview
from engine.reports.rollup import KeptParts
from engine.store import Store
from engine.web.dashboard_search import customer, customers, deliveries
from engine.workspace.loader import Workspace, load_workspace

log = logging.getLogger("nudge.serve")
REALM = 'Basic realm="nudge dashboard", charset="UTF-8"'
PREVIEW_SAMPLES = 2
# Nothing but the page itself: inline styles, our own frames (the preview), no script, no image
# or font from anywhere (the charts are inline SVG).
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)


def _preview_policy() -> str:
    """The preview page runs one script of ours (it sizes the email frames): allowed by its hash."""
    script = (PREVIEW_ASSETS / "preview.js").read_text(encoding="utf-8")
    digest = hashlib.sha256(script.encode()).digest()
    return PAGE_POLICY + f"; script-src 'sha256-{base64.b64encode(digest).decode()}'"


@dataclass
class Rules:
    """The workspace as the rule files are now: reloaded when a file changes, the last good load
    kept while a file is broken (as the daemon does)."""

    root: Path
    _seen: tuple | None = None
    _loaded: Workspace | None = None
    _problem: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> tuple[Workspace, str | None]:
        with self._lock:
            current = signature(self.root)
            if current != self._seen or self._loaded is None:
                self._seen = current
                try:
                    self._loaded, self._problem = load_workspace(self.root), None
                except UserInputError as exc:
                    self._problem = f"{len(exc.problems)} problems in the rule files (nudge validate): " + str(
                        exc.problems[0]
                    )
                    if self._loaded is None:
                        self._loaded = load_workspace(self.root, need_rules=False)
            return self._loaded, self._problem


class Dashboard:
    def __init__(self, store: Store, root: Path, password: str, clock: Callable[[], datetime]):
        if not password:
            raise ValueError("the dashboard needs a password")
        self.store, self.clock, self.rules = store, clock, Rules(root)
        self.kept = KeptParts()  # settled occurrences' counts and measurements, between requests
        self._password = password.encode()
        self.urls = Map(
            [
                Rule("/ui/", endpoint="campaigns"),
                Rule("/ui/campaigns/<name>", endpoint="campaign"),
                Rule("/ui/campaigns/<name>/preview", endpoint="preview"),
                Rule("/ui/customers", endpoint="customers"),
                Rule("/ui/customer", endpoint="customer"),
                Rule("/ui/deliveries", endpoint="deliveries"),
            ],
            strict_slashes=False,
        )

    def warm(self) -> None:
        """Count every campaign's settled occurrences once (`nudge serve` runs this in the
        background at start), so the first page opened is as quick as the next."""
        workspace, _ = self.rules.get()
        frame = Frame(str(workspace.root), workspace.config.timezone, self.clock(), True)
        try:
            for loaded in workspace.campaigns.values():
                with self.store.engine.connect() as conn:
                    campaign_page(conn, frame, workspace.config, loaded.campaign, "", self.kept)
        except Exception:  # a page that fails says so when it is opened; nothing to stop here
            log.exception("the dashboard could not count the campaigns ahead")

    def warm_in_background(self) -> None:
        """`warm` in a thread of this process. `nudge serve` starts it in each process that answers
        requests, after gunicorn's fork: one running in the master as it forks would leave the locks
        it held locked for good in every worker (every page would hang), and count for no worker."""
        threading.Thread(target=self.warm, name="nudge-dashboard-warm", daemon=True).start()

    def allowed(self, request: Request) -> bool:
        auth = request.authorization
        given = (auth.password or "") if auth is not None and auth.type == "basic" else ""
        return hmac.compare_digest(given.encode(), self._password)

    def __call__(self, request: Request) -> Response:
        if not self.allowed(request):
            return Response("the dashboard needs its password\n", 401, {"WWW-Authenticate": REALM, **_headers()})
        if request.method not in ("GET", "HEAD"):
            return Response("the dashboard is read-only\n", 405, {"Allow": "GET, HEAD", **_headers()})
        if request.path == "/ui":
            return Response(status=301, headers={"Location": "ui/", **_headers()})  # relative: a proxy's prefix stays
        workspace, problem = self.rules.get()
        below = request.path.removeprefix("/ui/").count("/")  # links are relative, back up to /ui/
        frame = Frame(str(workspace.root), workspace.config.timezone, self.clock(), True, "../" * below)
        try:
            endpoint, args = self.urls.bind_to_environ(request.environ).match()
        except NotFound:
            return self._html(message_page(frame, "Not found", "There is no such page on the dashboard."), 404)
        return getattr(self, endpoint)(request, workspace, frame, problem, **args)

    @staticmethod
    def _html(html: str, status: int = 200, policy: str = PAGE_POLICY) -> Response:
        return Response(html, status, mimetype="text/html", headers=_headers(policy))

    def campaigns(self, request: Request, workspace: Workspace, frame: Frame, problem: str | None) -> Response:
        rules = [loaded.campaign for loaded in workspace.campaigns.values()]
        with self.store.engine.connect() as conn:
            html = campaigns_page(conn, frame, rules)
        return self._html(_with_problem(html, problem))

    def campaign(
        self, request: Request, workspace: Workspace, frame: Frame, problem: str | None, name: str
    ) -> Response:
        loaded = workspace.campaigns.get(name)
        if loaded is None:
            return self._html(message_page(frame, "Not found", f"No campaign {name!r} in the rule files."), 404)
        with self.store.engine.connect() as conn:
            chosen = request.args.get("range", "")
            html = campaign_page(conn, frame, workspace.config, loaded.campaign, chosen, self.kept)
        return self._html(_with_problem(html, problem))

    def preview(self, request: Request, workspace: Workspace, frame: Frame, problem: str | None, name: str) -> Response:
        if name not in workspace.campaigns:
            return self._html(message_page(frame, "Not found", f"No campaign {name!r} in the rule files."), 404)
        chosen = workspace.select([name])
        with self.store.engine.connect() as conn:
            result = dry_run(conn, workspace, chosen, frame.now, render=PREVIEW_SAMPLES)
            conn.rollback()  # a preview writes nothing
        html = render_preview(result, chosen, workspace.config.timezone, str(workspace.root))
        return self._html(html, policy=_preview_policy())

    def customers(self, request: Request, workspace: Workspace, frame: Frame, problem: str | None) -> Response:
        with self.store.engine.connect() as conn:
            return self._html(customers(conn, frame, request.args.get("q", "").strip()))

    def customer(self, request: Request, workspace: Workspace, frame: Frame, problem: str | None) -> Response:
        with self.store.engine.connect() as conn:
            html, status = customer(conn, frame, workspace, request.args.get("id", ""))
        return self._html(html, status)

    def deliveries(self, request: Request, workspace: Workspace, frame: Frame, problem: str | None) -> Response:
        with self.store.engine.connect() as conn:
            return self._html(deliveries(conn, frame, request.args))


def _headers(policy: str = PAGE_POLICY) -> dict[str, Any]:
    # Customer data: never kept by a browser or proxy, never sent on as a referrer.
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": policy,
    }


def _with_problem(html: str, problem: str | None) -> str:
    if problem is None:
        return html
    from html import escape

    note = f'<section class="card problem"><p>Showing the rules as last loaded: {escape(problem)}</p></section>'
    return html.replace("<main>", "<main>" + note, 1)


def dashboard_from_config(
    store: Store,
    workspace: Workspace,
    environ: Mapping[str, str],
    clock: Callable[[], datetime],
    write_key: str | None,
    host: str,
) -> Dashboard | None:
    """The dashboard config.yaml asks for, or None without `ui`. Refused (RuntimeFailure) without
    its password, or with the ingestion write key as its password (whoever may post events must
    not read customers' timelines)."""
    if workspace.config.ui is None:
        return None
    name = workspace.config.ui.password_env
    password = environ.get(name) or None
    if password is None:
        raise RuntimeFailure(f"{name} must be set: config.yaml ui.password_env names it as the dashboard's password")
    if write_key is not None and hmac.compare_digest(password.encode(), write_key.encode()):
        raise RuntimeFailure(f"{name} must differ from the ingestion write key: the dashboard shows customers' data")
    if not _loopback(host):
        log.warning(
            "the dashboard's password crosses the network in the clear from %s: serve it behind a TLS proxy", host
        )
    return Dashboard(store, workspace.root, password, clock)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
