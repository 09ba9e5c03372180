"""Build the docs site, serve it on 127.0.0.1 and take headless Chromium screenshots of its home
page and its comparison pages (docs/img/screenshot-*.png).

    python scripts/screenshot.py [--out docs/img] [--chromium /usr/bin/chromium]

Exit 2 when Chromium is not installed (nothing is written); 1 when a screenshot fails.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (file name, page path on the site, window size)
SHOTS = (
    ("screenshot-home.png", "", "1280,900"),
    ("screenshot-comparison.png", "comparison/", "1280,900"),
)
#: With --html: the plugin's own HTML page, as ``--gmem-report`` writes it.
HTML_SHOT = ("screenshot-comparison-html.png", "comparison/gmem-report.html", "1280,1000")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def find_chromium(given: str | None) -> str | None:
    for candidate in (given, "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def build_site(dest: Path) -> None:
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(dest)],
                   cwd=ROOT, check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A local HTTP server on a free port of 127.0.0.1 (port 0: the kernel picks one)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def shoot(chromium: str, url: str, out: Path, size: str) -> None:
    with tempfile.TemporaryDirectory(prefix="gmem-chromium-") as profile:
        argv = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={size}", url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium failed on {url} ({done.returncode}): {done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="directory of the PNGs (default: docs/img)")
    p.add_argument("--html", action="store_true", help="also the plugin's HTML page (comparison/gmem-report.html)")
    p.add_argument("--chromium", default=None, help="the browser (default: /usr/bin/chromium, or on PATH)")
    args = p.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("screenshot: chromium not found (install it, e.g. apt-get install chromium, or pass --chromium)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gmem-site-") as site:
        build_site(Path(site))
        server, base = serve(Path(site))
        try:
            for name, page, size in (*SHOTS, HTML_SHOT) if args.html else SHOTS:
                shoot(chromium, base + page, out / name, size)
                print(f"screenshot: {base + page} -> {out / name} ({(out / name).stat().st_size} bytes)")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"screenshot: {exc}", file=sys.stderr)
            return 1
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
