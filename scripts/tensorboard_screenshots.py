"""Screenshots of TensorBoard's tabs on a folder of runs, as a browser shows them without a click.

    python scripts/tensorboard_screenshots.py <sweep or experiment folder> [--out <folder>] [--tabs timeseries,...]
                                              [--filter <regex of run names>]

Starts TensorBoard on the folder (a free port on 127.0.0.1), waits until it has read every run, then has headless
Chromium (Debian's `chromium`: `apt-get install chromium`) open each tab and save `<out>/<tab>.png` (out: the
folder's `screenshots/`, which TensorBoard does not read). `--filter` types a regex into each tab's run filter
(`<tab>-filtered.png`): past 40 runs the Scalars, Custom Scalars, Images and Text tabs tick only the runs a filter
matches. README, "Comparing runs in TensorBoard", says what each tab shows.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hyperlab.sweeps.callback import tensorboard_address

TABS = ("timeseries", "scalars", "custom_scalars", "images", "text", "hparams")  # (as TensorBoard's URLs name them)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SIZE = "1600,1100"
LOAD_MS = 20000  # the page's own time to fetch and draw (Chromium's virtual time: no real wait when it is done)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, help="where the PNGs go (default: <folder>/screenshots)")
    parser.add_argument("--tabs", default=",".join(TABS), help=f"comma-separated, of {', '.join(TABS)}")
    parser.add_argument("--filter", help="a regex of run names, typed into each tab's run filter")
    args = parser.parse_args()
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    tabs = args.tabs.split(",")
    problem = (
        f"no folder {args.folder}" if not args.folder.is_dir()
        else f"--tabs: {sorted(set(tabs) - set(TABS))} not among {', '.join(TABS)}" if not set(tabs) <= set(TABS)
        else "no Chromium found (Debian: apt-get install chromium)" if browser is None
        else ""
    )  # fmt: skip
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = args.out or args.folder / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tensorboard(args.folder) as url:
        for tab in tabs:
            shot = out / (f"{tab}-filtered.png" if args.filter else f"{tab}.png")
            address = tensorboard_address(tab, args.filter, f"{url}/") if args.filter else f"{url}/#{tab}"
            screenshot(browser, address, shot)
            print(shot)
    return 0


class tensorboard:
    """TensorBoard on `folder`, serving once it has read every folder that holds an event file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> str:
        runs = {path.parent for path in self.folder.rglob("events.out.tfevents.*")}
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".tensorboard.log")
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(self.folder), "--host", "127.0.0.1",
                   "--port", "0", "--reload_interval", "1"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 300
        url = None
        while url is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise SystemExit(f"error: TensorBoard did not start: {self.log.read()[-2000:]}")
            self.log.seek(0)
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", self.log.read())
            url = match[1] if match else time.sleep(0.3)
        while len(get(f"{url}/data/runs")) < len(runs) and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)  # (the last run's tags: read in the same reload)
        return url

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()


def get(url: str) -> list:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def screenshot(browser: str, url: str, shot: Path) -> None:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={SIZE}",
               f"--virtual-time-budget={LOAD_MS}", f"--screenshot={shot}", url]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=180, check=True)


if __name__ == "__main__":
    sys.exit(main())
