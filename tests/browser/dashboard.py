#!/usr/bin/env python3
"""rollgate's dashboard in a real browser: headless Chromium (Debian's
`chromium`) driven by Playwright for Python, against a running
`rollgate demo` and its AWS sandbox.

    python3 tests/browser/dashboard.py --url http://127.0.0.1:8080 \
        --sandbox http://127.0.0.1:PORT --screenshots target/screenshots

Run by `tests/it/browser.rs` (which starts the demo with a one-second watcher
tick); `.ci/run` installs Chromium and Playwright. The demo must be fresh:
the scenarios start their own rollouts on its one function, in order, and
make the function "bad" (then good again) near the end.

Every scenario asserts on what a user sees on the page. One line is printed
per scenario; the first failing assertion is printed with the page it
happened on (and a screenshot of it, failure.png), and the exit status is 1.
"""

import argparse
import json
import re
import sys
import time
import traceback
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SEED_PLAN = "dixon-smart-repair"
DEMO_PLAN = "dixon-smart-repair-demo"
FLAGS = ["USE_OPTIMIZED_PROMPTS", "USE_REFACTORED_TOOLS", "USE_FULL_OPTIMIZATION"]
UNRELATED = {
    "TABLE_NAME": "dixon-sessions",
    "LOG_LEVEL": "INFO",
    "MODEL_ID": "anthropic.claude-3-5-sonnet",
    "USE_V2_HANDLER": "false",
}
ACTOR = "ada"
# The demo plan's guardrails by metric, and their evidence:
# "error_rate 3.42 > 3.10 (baseline 1.10 + 2.00; 10000 samples)".
GUARDRAILS = {"error_rate": "error-rate", "duration_p99": "p99-duration"}
EVIDENCE = r"(error_rate|duration_p99) [\d.]+ > [\d.]+ \(baseline [\d.]+ [+×] [\d.]+; \d+ samples\)"
# How long the watcher may take to roll a bad phase back: the first whole
# bad minute, judged 5 s after it ends (README: one to two minutes).
ROLLBACK_WAIT_S = 180
# The watcher keeps one chart point a minute: a chart needs two.
CHART_WAIT_S = 240


def eventually(check, timeout, what, every=0.5):
    """Calls `check` until it returns something truthy; fails with `what`
    and the last value (or exception) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {what} (last seen: {last!r})")
        time.sleep(every)


def loopback_only(url):
    """True for URLs that stay on this machine (data:, about:, blob: too)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "about", "blob"):
        return True
    return parts.hostname in LOOPBACK


class Dashboard:
    def __init__(self, browser, url, sandbox, shots):
        self.browser = browser
        self.url = url.rstrip("/")
        self.sandbox = sandbox.rstrip("/")
        self.shots = shots
        self.requests = []  # (context, url) of every request of every page
        self.page_errors = []  # uncaught JavaScript exceptions
        self.contexts = []
        self.current = None  # the page a failure is reported on
        self.main = None  # the JavaScript-enabled, 1280 px, light context
        self.seed_page = None
        self.demo_page = None
        self.env0 = None  # the function's environment before any rollout
        self.seed_id = None
        self.demo_id = None

    # ----------------------------------------------------------- plumbing

    def context(self, label, **options):
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("color_scheme", "light")
        ctx = self.browser.new_context(**options)
        ctx.set_default_timeout(15_000)
        ctx.on("request", lambda req: self.requests.append((label, req.url)))

        def on_page(page):
            page.on("pageerror", lambda e: self.page_errors.append(f"{label} {page.url}: {e}"))

        ctx.on("page", on_page)
        self.contexts.append(ctx)
        return ctx

    def page(self, ctx):
        page = ctx.new_page()
        self.current = page
        return page

    def goto(self, page, path):
        self.current = page
        response = page.goto(self.url + path)
        assert response is not None and response.ok, (
            f"GET {path}: status {response.status if response else 'none'}"
        )
        return response

    def sandbox_env(self):
        with urllib.request.urlopen(f"{self.sandbox}/_sandbox/state", timeout=10) as r:
            state = json.load(r)
        # The demo has the seed plan's function and the canary plan's.
        functions = [f for f in state["functions"] if f["name"] == "dixon-smart-repair-handler"]
        assert len(functions) == 1, f"the sandbox has {len(functions)} seed functions"
        return functions[0]["environment"]

    def expect_sandbox(self, flags, what):
        """Waits until the function's environment is the original one with
        `flags` changed, and nothing else."""
        want = {**self.env0, **flags}
        eventually(lambda: self.sandbox_env() == want, 15, f"sandbox environment {what}: {want}")

    # ---------------------------------------------------------- page reads

    @staticmethod
    def text(page, selector):
        return " ".join(page.locator(selector).first.inner_text().split())

    def rollout_state(self, page):
        """(state, phase) from the rollout page's live summary."""
        line = self.text(page, "#live dl.kv dd")
        m = re.match(r"(\S+) in phase (\S+)", line)
        assert m, f"no 'STATE in phase P' in {line!r}"
        return m.group(1), m.group(2)

    @staticmethod
    def flag_diff(page):
        """[(flag, from, to)] of a confirmation page's "What will change"."""
        out = []
        for li in page.locator("ul.flag-diff li").all():
            out.append(
                (
                    li.locator(".flag").inner_text().strip(),
                    li.locator(".from").inner_text().strip(),
                    li.locator(".to").inner_text().strip(),
                )
            )
        return out

    @staticmethod
    def flags_table(page):
        """{flag: (desired, actual)} from "Flags on the function"."""
        rows = page.locator("section:has(h2:text-is('Flags on the function')) tbody tr")
        out = {}
        for tr in rows.all():
            cells = [" ".join(c.split()) for c in tr.locator("td").all_inner_texts()]
            out[cells[0]] = (cells[1], cells[2])
        return out

    @staticmethod
    def audit_entries(page):
        """[{action, actor, text, evidence}] of an `ol.audit`, newest first."""
        out = []
        for li in page.locator("ol.audit > li.entry").all():
            monos = li.locator(".entry-head > span.mono").all_inner_texts()
            evidence = li.locator(".entry-evidence")
            out.append(
                {
                    "action": li.locator(".entry-head strong").inner_text().strip(),
                    "actor": monos[1].strip() if len(monos) > 1 else "",
                    "text": " ".join(li.inner_text().split()),
                    "evidence": evidence.inner_text().strip() if evidence.count() else "",
                }
            )
        return out

    def confirm(self, page, action, reason=None, actor=ACTOR, force=False):
        """Fills a confirmation page and presses "Confirm: <action>"; returns
        the response to the POST (after any redirect)."""
        assert self.text(page, "h2") == "What will change", f"not a confirmation page: {page.url}"
        if reason is not None:
            page.fill("textarea#reason", reason)
        if actor is not None:
            page.fill("input#actor", actor)
        if force:
            page.check("input[name=force]")
        with page.expect_navigation() as nav:
            page.get_by_role("button", name=f"Confirm: {action}").click()
        return nav.value

    def expect_done(self, page, rollout_id, action):
        """The redirect after a POST landed on the rollout page with its flash."""
        path = urlsplit(page.url)
        assert path.path == f"/rollouts/{rollout_id}", f"landed on {page.url}"
        assert f"done={action}" in path.query, f"landed on {page.url}"
        assert self.text(page, "h1").startswith(f"Rollout #{rollout_id}"), self.text(page, "h1")
        flash = self.text(page, ".flash.ok")
        assert action in flash, f"flash {flash!r} does not mention {action}"

    def start(self, page, plan, reason):
        """Starts `plan` from the overview's form; returns the rollout id."""
        self.goto(page, "/")
        page.select_option("select#s-plan", plan)
        with page.expect_navigation():
            page.get_by_role("button", name="Review and start…").click()
        assert urlsplit(page.url).path == "/start", page.url
        assert f"plan={plan}" in urlsplit(page.url).query, page.url
        assert self.text(page, "h1") == f"Start plan {plan}", self.text(page, "h1")
        summary = self.text(page, "main")
        assert "dixon-smart-repair-handler" in summary, summary
        assert "every other variable stays as it is" in summary, summary
        self.confirm(page, "start", reason=reason)
        m = re.fullmatch(r"/rollouts/(\d+)", urlsplit(page.url).path)
        assert m, f"start landed on {page.url}"
        rollout_id = int(m.group(1))
        self.expect_done(page, rollout_id, "start")
        assert self.rollout_state(page) == ("active", "baseline"), self.rollout_state(page)
        first = self.audit_entries(page)[-1]
        assert first["action"] == "start" and first["actor"] == ACTOR, first
        assert reason in first["text"], first
        return rollout_id

    def advance_from_baseline(self, page, rollout_id, reason):
        """Baseline → prompts through the confirmation page."""
        self.goto(page, f"/rollouts/{rollout_id}")
        with page.expect_navigation():
            page.get_by_role("link", name="Advance to prompts…").click()
        assert urlsplit(page.url).path == f"/rollouts/{rollout_id}/advance", page.url
        assert self.text(page, "h1") == f"Advance rollout #{rollout_id} to prompts"
        diff = self.flag_diff(page)
        assert diff == [("USE_OPTIMIZED_PROMPTS", "false", "true")], diff
        assert "on dixon-smart-repair-handler" in self.text(page, "ul.flag-diff li")
        self.confirm(page, "advance", reason=reason)
        self.expect_done(page, rollout_id, "advance")
        assert self.rollout_state(page) == ("active", "prompts"), self.rollout_state(page)

    # ----------------------------------------------------------- scenarios

    def a_start_the_seed_plan(self):
        self.env0 = self.sandbox_env()
        for flag in FLAGS:
            assert self.env0.get(flag) == "false", self.env0
        for k, v in UNRELATED.items():
            assert self.env0.get(k) == v, self.env0
        self.main = self.context("main")
        page = self.page(self.main)
        self.goto(page, "/")
        assert self.text(page, "h1") == "Rollouts"
        assert "No rollouts" in self.text(page, "#rollouts h2")
        self.seed_id = self.start(page, SEED_PLAN, "week 2 of the migration")
        timeline = page.locator("ol.timeline > li .phase-name").all_inner_texts()
        assert timeline == ["baseline", "prompts", "tools", "full"], timeline
        self.goto(page, "/")
        row = page.locator(f"#rollouts tr:has(a[href='/rollouts/{self.seed_id}'])")
        assert row.count() == 1, f"rollout #{self.seed_id} is not on the overview"
        assert SEED_PLAN in row.inner_text() and "active" in row.inner_text(), row.inner_text()
        self.seed_page = page
        return f"rollout #{self.seed_id} active in phase baseline, started by {ACTOR} with a reason"

    def b_advance_with_a_reason(self):
        page = self.seed_page
        rid = self.seed_id
        self.advance_from_baseline(page, rid, "baseline looks good")
        eventually(
            lambda: self.flags_table(page).get("USE_OPTIMIZED_PROMPTS") == ("true", "true"),
            15,
            "flags table: USE_OPTIMIZED_PROMPTS desired true, actual true",
        )
        self.expect_sandbox({"USE_OPTIMIZED_PROMPTS": "true"}, "after the advance to prompts")
        entry = next(e for e in self.audit_entries(page) if e["action"] == "advance")
        assert entry["actor"] == ACTOR and "baseline looks good" in entry["text"], entry
        assert "USE_OPTIMIZED_PROMPTS false → true" in entry["text"], entry

        # prompts → tools: the 48 h bake and the gates are not met.
        with page.expect_navigation():
            page.get_by_role("link", name="Advance to tools…").click()
        diff = self.flag_diff(page)
        assert diff == [("USE_REFACTORED_TOOLS", "false", "true")], diff
        blockers = page.locator(".flash.warn li").all_inner_texts()
        assert any(re.search(r"bake time runs until .*\(4[78]h\d\dm left\)", b) for b in blockers), blockers
        assert any(b.startswith("gate ") for b in blockers), blockers
        assert "required to force" in self.text(page, "label[for=reason]")
        # Without force: refused, nothing changes, the input is kept.
        response = self.confirm(page, "advance", reason="gates can wait")
        assert response.status == 409, f"unforced advance: status {response.status}"
        assert "not ready to advance" in self.text(page, "main")
        assert page.locator("textarea#reason").input_value() == "gates can wait"
        self.goto(page, f"/rollouts/{rid}")
        assert self.rollout_state(page) == ("active", "prompts"), self.rollout_state(page)
        # Forced, with a reason.
        with page.expect_navigation():
            page.get_by_role("link", name="Advance to tools…").click()
        self.confirm(page, "advance", reason="load test showed it is fine", force=True)
        self.expect_done(page, rid, "advance")
        assert self.rollout_state(page) == ("active", "tools"), self.rollout_state(page)
        eventually(
            lambda: self.flags_table(page).get("USE_REFACTORED_TOOLS") == ("true", "true"),
            15,
            "flags table: USE_REFACTORED_TOOLS desired true, actual true",
        )
        flags = self.flags_table(page)
        assert flags["USE_OPTIMIZED_PROMPTS"] == ("true", "true"), flags
        assert flags["USE_FULL_OPTIMIZATION"] == ("false", "false"), flags
        self.expect_sandbox(
            {"USE_OPTIMIZED_PROMPTS": "true", "USE_REFACTORED_TOOLS": "true"},
            "after the forced advance to tools",
        )
        forced = next(e for e in self.audit_entries(page) if e["action"] == "advance")
        assert "load test showed it is fine" in forced["text"], forced
        return (
            "USE_OPTIMIZED_PROMPTS false → true shown, confirmed, on the page and in the sandbox; "
            "unforced advance past the 48 h bake refused (409), forced one went through; "
            f"{', '.join(UNRELATED)} unchanged"
        )

    def c1_roll_back(self):
        page = self.seed_page
        rid = self.seed_id
        rollback = page.locator("a#rollback")
        assert rollback.inner_text().strip() == "Roll back…"
        assert "danger" in rollback.get_attribute("class"), "the rollback link is not marked as dangerous"
        with page.expect_navigation():
            rollback.click()
        assert self.text(page, "h1") == f"Roll back rollout #{rid}"
        diff = self.flag_diff(page)
        assert sorted(diff) == [
            ("USE_OPTIMIZED_PROMPTS", "true", "false"),
            ("USE_REFACTORED_TOOLS", "true", "false"),
        ], diff
        # A reason is required: the browser does not submit without one.
        reason = page.locator("textarea#reason")
        assert reason.get_attribute("required") is not None, "the rollback reason is not required"
        page.get_by_role("button", name="Confirm: rollback").click()
        assert reason.evaluate("e => e.validity.valueMissing"), "an empty reason was accepted"
        assert urlsplit(page.url).path == f"/rollouts/{rid}/rollback", page.url
        self.confirm(page, "rollback", reason="error rate up in the canary region")
        self.expect_done(page, rid, "rollback")
        assert self.rollout_state(page) == ("rolled_back", "baseline"), self.rollout_state(page)
        eventually(
            lambda: all(v == ("false", "false") for v in self.flags_table(page).values()),
            15,
            "flags table: every flag desired false, actual false",
        )
        self.expect_sandbox({}, "after the rollback (all as before the rollout)")
        entry = self.audit_entries(page)
        rb = next(e for e in entry if e["action"] == "rollback")
        assert rb["actor"] == ACTOR and "error rate up in the canary region" in rb["text"], rb
        assert page.locator("a#rollback").count() == 0, "a rolled-back rollout still offers a rollback"
        return f"rollout #{rid} rolled back with a reason (an empty one is refused); sandbox as before"

    def c2_start_the_demo_plan(self):
        page = self.page(self.main)
        self.demo_page = page
        self.demo_id = self.start(page, DEMO_PLAN, "demo: watch it roll back")
        self.advance_from_baseline(page, self.demo_id, "show the automatic rollback")
        self.expect_sandbox({"USE_OPTIMIZED_PROMPTS": "true"}, "after the demo's advance")
        return f"rollout #{self.demo_id} of {DEMO_PLAN} active in phase prompts"

    def d_without_javascript(self):
        ctx = self.context("no-js", java_script_enabled=False)
        page = self.page(ctx)
        rid = self.demo_id
        self.goto(page, f"/rollouts/{rid}")
        assert page.locator("html.js").count() == 0, "JavaScript ran in the no-JS context"
        for action, label, state in [("pause", "Pause…", "paused"), ("resume", "Resume…", "active")]:
            with page.expect_navigation():
                page.get_by_role("link", name=label).click()
            assert urlsplit(page.url).path == f"/rollouts/{rid}/{action}", page.url
            response = self.confirm(page, action, reason=f"{action} without JavaScript")
            assert response.status == 200, f"{action}: status {response.status}"
            # The 303's target, fetched by the browser itself.
            assert response.request.redirected_from is not None, f"{action}: no redirect after the POST"
            assert response.request.redirected_from.method == "POST"
            self.expect_done(page, rid, action)
            assert self.rollout_state(page) == (state, "prompts"), self.rollout_state(page)
        ctx.close()
        return f"pause then resume of #{rid} by plain forms: POST, 303, flash and new state"

    def e_conflicting_action(self):
        rid = self.demo_id
        first, second = self.page(self.main), self.page(self.main)
        for p in (first, second):
            self.goto(p, f"/rollouts/{rid}/pause")
            assert self.text(p, "h1") == f"Pause rollout #{rid}"
        self.confirm(first, "pause", reason="first operator")
        self.expect_done(first, rid, "pause")
        self.current = second
        response = self.confirm(second, "pause", reason="second operator")
        assert response.status == 409, f"second pause: status {response.status}"
        assert self.text(second, "h1") == f"Pause rollout #{rid}", "not the confirmation page again"
        warn = self.text(second, ".flash.warn")
        assert "Someone else acted first" in warn, warn
        assert "now paused in phase prompts" in warn, warn
        assert second.locator(".flash.error").count() == 0, self.text(second, ".flash.error")
        assert second.locator("textarea#reason").input_value() == "second operator"
        # Back to active for the next scenario.
        self.goto(first, f"/rollouts/{rid}/resume")
        self.confirm(first, "resume", reason="carry on")
        self.expect_done(first, rid, "resume")
        assert self.rollout_state(first) == ("active", "prompts"), self.rollout_state(first)
        first.close()
        second.close()
        return f"second confirm got 409 with {warn!r}"

    def c3_automatic_rollback(self):
        page = self.demo_page
        rid = self.demo_id
        self.goto(page, f"/rollouts/{rid}")
        self.current = page
        # Charts need two points, kept a minute apart: wait for them here, on
        # the live page (htmx swaps #live, app.js draws the charts again),
        # before the phase goes bad and the watcher stops keeping points.
        page.evaluate("window.__notReloaded = true")
        eventually(
            lambda: page.locator("figure.chart canvas").count() > 0,
            CHART_WAIT_S,
            "a chart drawn on the live rollout page (figure.chart canvas)",
            every=1,
        )
        assert page.evaluate("window.__notReloaded === true"), "the page reloaded instead of refreshing #live"
        with page.expect_navigation():
            page.get_by_role("button", name="Demo: make this phase bad").click()
        assert urlsplit(page.url).path == f"/rollouts/{rid}", page.url
        page.evaluate("window.__notReloaded = true")
        started = time.monotonic()

        def rolled_back_by_watcher():
            if self.rollout_state(page)[0] != "rolled_back":
                return None
            return next(
                (e for e in self.audit_entries(page) if e["action"] == "rollback" and e["actor"] == "rollgate/watcher"),
                None,
            )

        entry = eventually(
            rolled_back_by_watcher,
            ROLLBACK_WAIT_S,
            "the live rollout page shows rolled_back and a rollback by rollgate/watcher",
            every=1,
        )
        took = time.monotonic() - started
        assert page.evaluate("window.__notReloaded === true"), "the page reloaded instead of refreshing #live"
        # The bad phase breaks two guardrails at about the same moment (both
        # once ~20 % of the 1-minute window is bad traffic): the evidence
        # names whichever crossed first, with its numbers.
        # The evidence sentence is in the entry's reason (a separate
        # evidence block appears only when the reason does not hold it).
        evidence = re.search(EVIDENCE, entry["evidence"] or entry["text"])
        assert evidence, f"evidence without a guardrail's numbers: {entry}"
        assert f"guardrail {GUARDRAILS[evidence.group(1)]} breached" in entry["text"], entry
        decision = self.text(page, "#live blockquote.entry-evidence")
        assert evidence.group(0) in decision, f"latest watcher decision: {decision!r}"
        self.expect_sandbox({}, "after the automatic rollback")

        # The audit page, filtered by action = rollback, has the same entry.
        audit = self.page(self.main)
        self.goto(audit, "/audit")
        # "Verify now" checks the whole chain, up to the newest entry.
        newest = int(re.match(r"#(\d+)", self.audit_entries(audit)[0]["text"]).group(1))
        with audit.expect_navigation():
            audit.get_by_role("button", name="Verify now").click()
        assert urlsplit(audit.url).path == "/audit", audit.url
        verified = self.text(audit, ".flash.ok")
        m = re.match(r"Chain intact: (\d+) entries verified", verified)
        assert m and int(m.group(1)) >= newest, f"{verified!r}, newest entry #{newest}"
        audit.select_option("select#a-action", "rollback")
        with audit.expect_navigation():
            audit.get_by_role("button", name="Filter").click()
        assert "action=rollback" in urlsplit(audit.url).query, audit.url
        entries = self.audit_entries(audit)
        assert entries and all(e["action"] == "rollback" for e in entries), entries
        watcher = [e for e in entries if e["actor"] == "rollgate/watcher"]
        assert len(watcher) == 1 and evidence.group(0) in watcher[0]["text"], watcher
        assert any(e["actor"] == ACTOR for e in entries), entries
        audit.close()

        # Cleanup for the screenshots: the function is well again.
        with page.expect_navigation():
            page.get_by_role("button", name="Demo: make it good again").click()
        return f"rolled back by rollgate/watcher {took:.0f} s after the phase went bad: {evidence.group(0)}"

    def f_loopback_only(self):
        assert self.requests, "no request was recorded"
        outside = sorted({url for _, url in self.requests if not loopback_only(url)})
        assert not outside, f"requests leaving loopback: {outside}"
        assert any(url.endswith("/static/vendor/htmx.min.js") for _, url in self.requests)
        assert any(url.endswith("/static/vendor/uPlot.iife.min.js") for _, url in self.requests)
        assert not self.page_errors, f"JavaScript errors: {self.page_errors}"
        return f"{len(self.requests)} requests from {len(self.contexts)} contexts, all to loopback; no JavaScript errors"

    def g_screenshots(self):
        self.shots.mkdir(parents=True, exist_ok=True)
        rid = self.demo_id

        def shot(ctx, path, name, charts=False):
            page = self.page(ctx)
            self.goto(page, path)
            if charts:
                page.wait_for_selector("figure.chart canvas")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(self.shots / name), full_page=True)
            page.close()

        shot(self.main, "/", "overview.png")
        shot(self.main, f"/rollouts/{rid}", "rollout.png", charts=True)
        shot(self.main, "/audit", "audit.png")
        shot(self.context("dark", color_scheme="dark"), f"/rollouts/{rid}", "rollout-dark.png", charts=True)
        shot(self.context("phone", viewport={"width": 390, "height": 844}), "/", "overview-phone.png")
        return f"5 screenshots in {self.shots}"

    def fail_report(self):
        page = self.current
        if page is None or page.is_closed():
            return
        print(f"  page: {page.url}", file=sys.stderr)
        try:
            text = " ".join(page.locator("main").inner_text(timeout=2000).split())
            print(f"  shows: {text[:1500]}", file=sys.stderr)
        except Exception:  # noqa: BLE001 — best effort
            pass
        try:
            self.shots.mkdir(parents=True, exist_ok=True)
            path = self.shots / "failure.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"  screenshot: {path}", file=sys.stderr)
        except Exception:  # noqa: BLE001 — best effort
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="the dashboard, e.g. http://127.0.0.1:8080")
    ap.add_argument("--sandbox", required=True, help="the demo's AWS sandbox")
    ap.add_argument("--screenshots", required=True, type=Path, help="directory for the PNGs")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    for url in (args.url, args.sandbox):
        assert loopback_only(url), f"{url} is not on loopback"

    # In this order: one function, one active rollout at a time. d and e use
    # the demo rollout while its charts collect their two points (a minute
    # apart); c.3 comes after them because it makes the function bad; f
    # checks the requests of every context, the screenshots' too.
    scenarios = [
        ("a.", "start the seed plan from the overview", "a_start_the_seed_plan"),
        ("b.", "advance with a reason; forced advance past unmet checks", "b_advance_with_a_reason"),
        ("c.1", "roll back by hand (reason required)", "c1_roll_back"),
        ("c.2", "start and advance the demo plan", "c2_start_the_demo_plan"),
        ("d.", "pause and resume with JavaScript off", "d_without_javascript"),
        ("e.", "conflicting pause shows the friendly message", "e_conflicting_action"),
        ("c.3", "bad phase: automatic rollback on the page and in /audit", "c3_automatic_rollback"),
        ("g.", "screenshots", "g_screenshots"),
        ("f.", "no request of any page left loopback", "f_loopback_only"),
    ]
    (args.screenshots / "failure.png").unlink(missing_ok=True)
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        d = Dashboard(browser, args.url, args.sandbox, args.screenshots)
        try:
            for letter, title, method in scenarios:
                t0 = time.monotonic()
                try:
                    detail = getattr(d, method)()
                except Exception as e:  # noqa: BLE001 — report and stop
                    print(f"FAIL {letter} {title}: {type(e).__name__}: {e}", flush=True)
                    traceback.print_exc()
                    d.fail_report()
                    return 1
                print(f"ok   {letter} {title} ({time.monotonic() - t0:.1f} s): {detail}", flush=True)
        finally:
            browser.close()
    print(f"all scenarios passed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
