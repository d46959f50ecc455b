#!/usr/bin/env python3
"""Signing in to rollgate through the identity provider in a real browser:
headless Chromium (Debian's `chromium`) driven by Playwright for Python.
rollgate is on 127.0.0.1 and the provider (node-oidc-provider) on
localhost, so they are different sites, as a company's provider is; the
session cookie is SameSite=Strict, which a browser does not send on a
redirect that began at another site.

    python3 tests/browser/oidc_sign_in.py --url http://127.0.0.1:PORT

Run by `tests/it/browser.rs`. Prints one line per step; exits 1 at the first
failing assertion.
"""

import argparse
import re
import sys

from playwright.sync_api import expect, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    base = args.url.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        errors = []
        try:
            ctx = browser.new_context()
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(f"{base}/audit")
            assert "/login?next=%2Faudit" in page.url, page.url
            page.get_by_role("link", name="Sign in with your identity provider").click()
            page.wait_for_url(re.compile(r"http://localhost:\d+/interaction/.*"))
            print("ok   the sign-in page sends the browser to the identity provider", flush=True)

            page.fill("input[name=login]", "otto")
            page.fill("input[name=password]", "any password will do")
            page.get_by_role("button", name="Sign-in").click()
            page.get_by_role("button", name="Continue").click()
            page.wait_for_url(re.compile(r"http://127\.0\.0\.1:\d+/audit$"))
            expect(page.locator("#signed-in")).to_contain_text("oidc:otto")
            print("ok   back from the provider, signed in as oidc:otto, where it started", flush=True)

            cookies = {c["name"]: c for c in ctx.cookies()}
            session = cookies["rollgate_session"]
            assert session["httpOnly"] and session["sameSite"] == "Strict", session
            assert "rollgate_oidc" not in cookies, "the browser binding is used up"
            print("ok   the session cookie is HttpOnly and SameSite=Strict", flush=True)

            page.goto(f"{base}/start?plan=dixon-smart-repair")
            expect(page.get_by_text("Recorded as oidc:otto")).to_be_visible()
            page.fill("textarea#reason", "browser OIDC sign-in test")
            # The sandbox function has taken no traffic yet: no baseline, so
            # the preflight fails and the start is forced past it, with the reason.
            page.check("input[name=force]")
            page.get_by_role("button", name="Confirm: start").click()
            page.wait_for_url(re.compile(r".*/rollouts/\d+\?done=start.*"))
            print("ok   otto starts a rollout from the dashboard, as oidc:otto", flush=True)
            assert not errors, errors
        except Exception as e:  # noqa: BLE001 — report and stop
            print(f"FAIL {type(e).__name__}: {e}", flush=True)
            try:
                print(page.url, page.content()[:3000], flush=True)
            except Exception:  # noqa: BLE001
                pass
            return 1
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
