"""Benchmark: augmented training batches, item by item (DataLoader) against whole batches
(`SplitView.batch`), and images read from files by DataLoader workers -> results/batches.md.

A CIFAR-10-sized stand-in held in memory as the torchvision loaders hold it (45,000 uint8
images, 3x32x32, random pixels), random crop (padding 4) and horizontal flip, normalised; the
search's training `Batches` of it, one epoch's first `--batches` batches per timing, the two
paths interleaved over `--repeats` rounds (medians). torch runs `--threads` threads. This
measures the input pipeline on the CPU only; no GPU was at hand.

Then an `imagefolder` of `--folder-images` generated JPEG photo-sized images (256x256, random
smooth colour fields, 10 classes) resized to 32x32 and augmented, read item by item: one whole
training epoch (worker start-up included) with `data.workers` 0, 1, 2, ..., `--max-workers`.

    python tools/bench_batches.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from moonas.data._splits import RandomCropFlip, SplitView, TensorImages  # noqa: E402
from moonas.search.batches import Batches  # noqa: E402

PATHS = {"items (DataLoader, per-item transform)": False, "whole batches (shipped)": True}


def stand_in(n: int) -> SplitView:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    source = TensorImages(images, torch.randint(0, 10, (n,), generator=generator))
    return SplitView(source, np.arange(n), source.labels, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26),
                     augment=RandomCropFlip(4, torch.Generator()))


def write_folder(root: Path, n: int, classes: int = 10) -> None:
    """`n` JPEG images of 256x256 (smooth random colour fields) in `classes` class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((256, 256), Image.BILINEAR)
        image.save(folder / f"{i}.jpg", quality=90)


def time_whole_epoch(batches: Batches, epoch: int) -> float:
    """Seconds for every batch of `epoch` (a loader's worker start-up included)."""
    started = time.perf_counter()
    for _ in batches.epoch(epoch):
        pass
    return time.perf_counter() - started


def time_epoch(batches: Batches, epoch: int, count: int) -> float:
    """Milliseconds per batch over the first `count` batches of `epoch`."""
    started = time.perf_counter()
    done = 0
    for _ in batches.epoch(epoch):
        done += 1
        if done == count:
            break
    return (time.perf_counter() - started) / done * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=45_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--folder-images", type=int, default=4000)
    parser.add_argument("--max-workers", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" /
                                             "batches.md"))
    args = parser.parse_args(argv)
    # --batch-sizes itself is checked by `Batches` (its message names batch_size).
    at_least("--items", args.items, max(args.batch_sizes), "one batch of each --batch-sizes")
    for flag in ("--batches", "--repeats", "--threads"):
        at_least(flag, getattr(args, flag[2:]), 1)
    at_least("--folder-images", args.folder_images, 0, "0 skips the imagefolder part")
    at_least("--max-workers", args.max_workers, 0)
    check_out_file(args.out)
    torch.set_num_threads(args.threads)
    view = stand_in(args.items)
    times: dict[tuple[int, str], list[float]] = {}
    for r in range(args.repeats):
        for size in args.batch_sizes:
            for name, batched in PATHS.items():
                batches = Batches(view, size, seed=0, stream=3, drop_last=True, batched=batched)
                assert batches.batched == batched
                times.setdefault((size, name), []).append(time_epoch(batches, r, args.batches))
    lines = [header("Augmented training batches: items against whole batches (CPU)"), "",
             f"{args.items:,} uint8 3x32x32 images in memory, crop (padding 4) + flip + "
             f"normalise; the first {args.batches} batches of an epoch per timing, "
             f"{args.repeats} interleaved rounds, medians; {args.threads} torch thread(s).",
             "", "| batch | path | ms per batch | items per second | speed-up |",
             "|---:|---|---:|---:|---:|"]
    for size in args.batch_sizes:
        base = statistics.median(times[(size, next(iter(PATHS)))])
        for name in PATHS:
            ms = statistics.median(times[(size, name)])
            lines.append(f"| {size} | {name} | {ms:.2f} | {size / ms * 1000:,.0f} | "
                         f"{base / ms:.2f}x |")
    if args.folder_images > 0:
        lines += folder_section(args)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def folder_section(args: argparse.Namespace) -> list[str]:
    from moonas.data import load_dataset

    workers = list(range(args.max_workers + 1))
    seconds: dict[int, list[float]] = {w: [] for w in workers}
    with tempfile.TemporaryDirectory(prefix="moonas-folder-") as tmp:
        root = Path(tmp) / "images"
        write_folder(root, args.folder_images)
        train = load_dataset("imagefolder", root=root, seed=0, augment=True, image_size=32).train
        for r in range(args.repeats):
            for w in workers:
                batches = Batches(train, 64, seed=0, stream=3, drop_last=True, workers=w)
                seconds[w].append(time_whole_epoch(batches, r))
    base = statistics.median(seconds[0])
    lines = ["", f"`imagefolder`: {len(train):,} training images (JPEG 256x256, resized to 32x32, "
             f"crop + flip), batch 64, one whole epoch per timing, {args.repeats} interleaved "
             "rounds, medians.", "", "| data.workers | epoch s | images per second | speed-up |",
             "|---:|---:|---:|---:|"]
    for w in workers:
        t = statistics.median(seconds[w])
        n = len(train) - len(train) % 64
        lines.append(f"| {w} | {t:.2f} | {n / t:,.0f} | {base / t:.2f}x |")
    return lines


if __name__ == "__main__":
    sys.exit(run_tool(main))
