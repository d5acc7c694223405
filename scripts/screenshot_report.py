"""Save a screenshot of a report (what reports/example.png shows): headless Chromium through playwright.

    python scripts/screenshot_report.py reports/<run>/report.html reports/example.png [--height 1700]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--height", type=int, default=1700)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium (Debian package `chromium`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": a.height})
        page.goto(a.report.resolve().as_uri())
        page.screenshot(path=str(a.png))
        browser.close()
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
