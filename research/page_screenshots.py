"""Screenshots of an exported page (`export.py --web`) in headless Chromium, at a
desktop and a phone size, as docs/controls/ shows them.

    python -m research.page_screenshots --web_dir=EXPORT/web --out=docs/controls \
        --hash="seed=7&t=0.7&var=2&s=0.3"

Writes OUT/page_desktop.png (1000 x 900) and OUT/page_phone.png (390 x 844, the
page's phone layout), each after the page says its model is ready and has drawn.
"""

import os

from absl import app, flags

from benchmarks.machine import chromium_path, served

flags.DEFINE_string("web_dir", None, "The page's folder (EXPORT/web).", required=True)
flags.DEFINE_string("out", None, "Folder for the two PNGs (created).", required=True)
flags.DEFINE_string("hash", "seed=7", "The address's fragment the page opens at.")
flags.DEFINE_string("chromium", None, "Chromium binary (default: chromium on PATH).")
FLAGS = flags.FLAGS

SIZES = {"page_desktop.png": {"width": 1000, "height": 900},
         "page_phone.png": {"width": 390, "height": 844}}


def main(argv):
    del argv
    from playwright.sync_api import sync_playwright
    chromium = chromium_path(FLAGS.chromium)
    os.makedirs(FLAGS.out, exist_ok=True)
    with served(FLAGS.web_dir) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for name, size in SIZES.items():
            page = browser.new_page(viewport=size)
            page.goto(f"{url}#{FLAGS.hash}")
            page.evaluate("() => window.melTfPage.ready")
            page.wait_for_timeout(500)          # the grid and the large icon are drawn
            page.screenshot(path=os.path.join(FLAGS.out, name))
            page.close()
        browser.close()
    print("wrote", ", ".join(os.path.join(FLAGS.out, n) for n in SIZES))


if __name__ == "__main__":
    app.run(main)
