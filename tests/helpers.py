"""Helpers of the tests: the real config tree composed into a temporary run folder, TensorBoard event readers and
a real TensorBoard server."""

import json
import pickle
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageFont
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hyperlab.classes import CONF_DIR
from hyperlab.schemas import register_schemas

EXPERIMENTS = sorted(path.stem for path in (CONF_DIR / "experiment").glob("*.yaml"))


def compose_config(run_dir: Path, *overrides: str) -> DictConfig:
    """Compose `train.yaml` as the command line would, with the run writing into `run_dir`."""
    register_schemas()  # (importing hyperlab.schemas did: again, in case a test cleared Hydra's ConfigStore)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                *overrides,
                f"paths.log_dir={run_dir.parent}",
                f"paths.output_dir={run_dir}",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
            ],
        )


def read_events(run_dir: Path) -> EventAccumulator:
    """A run's own TensorBoard record (its curves are in the sub-runs `<run>/train`, `<run>/val`, `<run>/test`)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def scalar_values(run_dir: Path, tag: str) -> list[float]:
    return [event.value for event in read_events(run_dir).Scalars(tag)]


def curve(run_dir: Path, metric: str) -> list[float]:
    """The values of `val/acc` (say) as TensorBoard draws them: the run's tag `val/acc`."""
    return [event.value for event in read_events(run_dir).Scalars(metric)]


ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


class TensorBoardServer:
    """What a real TensorBoard server (`tensorboard --logdir`, its own process, on 127.0.0.1) serves to a browser."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.load(response)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def loaded(self) -> list[Any]:
        """What it has read so far: every run's tags."""
        return [self.get(f"/data/plugin/{plugin}/tags") for plugin in ("scalars", "images", "text")]

    def experiment(self) -> dict[str, Any]:
        """The HParams tab's columns: `hparamInfos` (in the order TensorBoard shows them) and `metricInfos`."""
        return self.post("/data/plugin/hparams/experiment", {"experimentName": ""})

    def sessions(self) -> dict[str, dict[str, Any]]:
        """The HParams tab's rows in the order it shows them, by session (run) name: `hparams`, `metrics` (by display
        name), `status` and `group` (the row's name)."""
        infos = {json.dumps(info["name"], sort_keys=True): info.get("displayName") or info["name"]["tag"]
                 for info in self.experiment()["metricInfos"]}  # fmt: skip
        body = {"experimentName": "", "allowedStatuses": ALL_STATUSES, "colParams": [], "startIndex": 0,
                "sliceSize": 1000}  # fmt: skip
        rows = {}
        for group in self.post("/data/plugin/hparams/session_groups", body)["sessionGroups"]:
            (session,) = group["sessions"]
            values = group["metricValues"]
            metrics = {infos[json.dumps(value["name"], sort_keys=True)]: value["value"] for value in values}
            rows[session["name"]] = {"hparams": group["hparams"], "metrics": metrics, "status": session["status"],
                                     "group": group["name"]}  # fmt: skip
        return rows


@contextmanager
def tensorboard_server(logdir: Path) -> Iterator[TensorBoardServer]:
    """Start TensorBoard on `logdir` (a free port, the Python data loader) and wait until it serves every run (every
    folder with an event file)."""
    runs = {str(path.parent.relative_to(logdir)) for path in logdir.rglob("events.out.tfevents.*")}
    log = Path(tempfile.mkstemp(suffix=".tensorboard.log")[1])  # (outside the folder it reads)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0",
             "--load_fast", "false", "--reload_interval", "1"],
            stdout=output, stderr=output,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            match = re.search(r"(http://127\.0\.0\.1:\d+/)", log.read_text())
            url = match[1].rstrip("/") if match else time.sleep(0.2)
        server = TensorBoardServer(url)
        loaded, previous = server.loaded(), None
        while not runs <= set(server.get("/data/runs")) or loaded != previous:  # (a reload may be halfway through)
            assert time.monotonic() < deadline, server.get("/data/runs")
            time.sleep(1)
            loaded, previous = server.loaded(), loaded
        yield server
    finally:
        process.kill()
        process.wait()
        log.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ small MNIST-format files
def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the official MNIST files (big-endian header, then the bytes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def glyph(label: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A light digit on black, about 20 pixels tall and jittered like MNIST's: a drawn stand-in for a real one."""
    image = Image.new("L", (size, size), 0)
    font = ImageFont.load_default(size=26)
    left, top, right, bottom = font.getbbox(str(label))
    x = (size - (right - left)) / 2 - left + rng.integers(-2, 3)
    y = (size - (bottom - top)) / 2 - top + rng.integers(-2, 3)
    ImageDraw.Draw(image).text((x, y), str(label), fill=int(rng.integers(180, 256)), font=font)
    noise = rng.normal(0, 12, (size, size))
    return np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)


def write_mnist_files(root: Path, folder: str = "MNIST", train: int = 600, test: int = 100, seed: int = 0) -> None:
    """`<root>/<folder>/raw/` with the four files torchvision reads, holding `train` + `test` drawn digits."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = np.arange(count) % 10
        rng.shuffle(labels)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.stack([glyph(int(label), rng) for label in labels]))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))


# ------------------------------------------------------------------------------------- CSV files of the course's shapes
def write_animals_csv(path: Path, rows: int = 150, seed: int = 0) -> Path:
    """The course's animals table: animal_name, hair, feathers, eggs, milk, predator, legs, tail, type."""
    rng = np.random.default_rng(seed)
    lines = ["animal_name,hair,feathers,eggs,milk,predator,legs,tail,type"]
    for i in range(rows):
        kind = ["bird", "mammal", "reptile"][i % 3]
        hair, feathers, eggs, milk = {"bird": (0, 1, 1, 0), "mammal": (1, 0, 0, 1), "reptile": (0, 0, 1, 0)}[kind]
        if rng.random() < 0.1:  # a few odd ones, as the platypus
            hair, eggs = 1 - hair, 1 - eggs
        legs = {"bird": 2, "mammal": int(rng.choice([2, 4])), "reptile": int(rng.choice([0, 4]))}[kind]
        lines.append(f"animal{i},{hair},{feathers},{eggs},{milk},{int(rng.integers(2))},{legs},1,{kind}")
    path.write_text("\n".join(lines) + "\n")
    return path


COUNTRIES = [f"{a}{b}" for a in "ABCDEFGH" for b in "ABCDEFGH"]  # 64 two-letter codes


def write_salary_csv(path: Path, rows: int = 300, seed: int = 0, shift: float = 0.0) -> Path:
    """The course's data-science salary table (an unnamed index column first, some salaries missing)."""
    rng = np.random.default_rng(seed)
    levels = {"EN": 60_000, "MI": 90_000, "SE": 130_000, "EX": 180_000}
    titles = {"Data Scientist": 0, "Data Engineer": 5_000, "ML Engineer": 15_000, "Data Analyst": -20_000}
    sizes = {"S": -10_000, "M": 0, "L": 10_000}
    lines = [",work_year,experience_level,employment_type,job_title,salary,salary_currency,salary_in_usd,"
             "employee_residence,remote_ratio,company_location,company_size"]  # fmt: skip
    for i in range(rows):
        level, title, size = rng.choice(list(levels)), rng.choice(list(titles)), rng.choice(list(sizes))
        usd = levels[level] + titles[title] + sizes[size] + rng.normal(0, 8_000) + shift
        salary = "" if i % 25 == 7 else f"{usd:.0f}"  # a few rows without the target
        residence, location = rng.choice(COUNTRIES, size=2)  # as many countries as the course's file
        lines.append(f"{i},{rng.choice([2020, 2021, 2022])},{level},FT,{title},{usd * 0.9:.0f},EUR,{salary},"
                     f"{residence},{rng.choice([0, 50, 100])},{location},{size}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------- a folder of your own images
SHAPES = ("circle", "square", "triangle")


def draw_shape(shape: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A shape in a random place, size and shade of its own colour (circles red, squares green, triangles blue) on
    a random light background: an RGB image of `size`."""
    width, height = size
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(150, 256, 3)))
    side = int(rng.integers(min(size) // 2, min(size) - 4))
    left, top = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    box = (left, top, left + side, top + side)
    colour = [int(v) for v in rng.integers(0, 60, 3)]
    colour[SHAPES.index(shape)] = int(rng.integers(120, 200))
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse(box, fill=tuple(colour))
    elif shape == "square":
        draw.rectangle(box, fill=tuple(colour))
    else:
        draw.polygon([(left, top + side), (left + side, top + side), (left + side // 2, top)], fill=tuple(colour))
    return image


def write_image_folder(root: Path, per_class: int = 30, seed: int = 0) -> Path:
    """torchvision's ImageFolder layout: `root/<shape>/<n>.png` for three shapes, images of mixed sizes and modes
    (RGB, grey, RGBA, a JPEG), plus two files that are not images (`broken.png`, `notes.txt`)."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            image = draw_shape(shape, rng, (int(rng.integers(24, 48)), int(rng.integers(24, 48))))
            if n % 5 == 1:
                image = image.convert("L")
            elif n % 5 == 2:
                image = image.convert("RGBA")
            image.save(root / shape / (f"{n}.jpg" if n % 5 == 3 else f"{n}.png"))
    (root / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "circle" / "notes.txt").write_text("not an image\n")
    return root


# CIFAR-10 in torchvision's python layout, tiny: each class a colour
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
COLOURS = np.array([[c // 4 % 2, c // 2 % 2, c % 2] for c in range(8)] + [[1, 0.5, 0], [0.5, 0, 1]]) * 255


def images_of(labels: list[int], rng: np.random.Generator) -> np.ndarray:
    """N x 3072 uint8 (channel-major, as CIFAR-10 stores them): each class a colour, with noise."""
    pixels = COLOURS[labels][:, :, None] + rng.normal(0, 20, (len(labels), 3, 1024))
    return np.clip(pixels, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def write_batch(path: Path, labels: list[int], rng: np.random.Generator, name: str) -> None:
    """A batch file as torchvision reads it: a pickled dict of data, labels, batch_label and filenames (protocol 4:
    the official Python 2 files name the same numpy globals; their keys are text once read as latin-1, bytes here)."""
    batch = {b"batch_label": name.encode(), b"labels": labels, b"data": images_of(labels, rng),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}  # fmt: skip
    path.write_bytes(pickle.dumps(batch, protocol=4))


def write_cifar(root: Path, per_class: int = 3, seed: int = 0) -> Path:
    """`<root>/cifar-10-batches-py/` with five training batches, a test batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(1, 6):
        labels = [int(c) for c in rng.permutation(list(range(10)) * per_class)]
        write_batch(folder / f"data_batch_{i}", labels, rng, f"training batch {i} of 5")
    write_batch(folder / "test_batch", [c for c in range(10) for _ in range(per_class)], rng, "testing batch 1 of 1")
    meta = {"num_cases_per_batch": 10 * per_class, "label_names": CLASSES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root
