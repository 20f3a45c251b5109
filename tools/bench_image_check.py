"""Benchmark: what the imagefolder load-time check costs per image -> results/image_check.md.

Every image of an `imagefolder` dataset is decoded when it loads (a damaged file is named
before any training; JPEGs at 1/8 scale, on up to 8 threads). This tool writes `--images`
JPEG files of `--width` x `--height` (a smooth gradient plus noise, about the bytes per pixel
of a photo at quality 90, ImageNet's typical size by default) and the same number of PNGs into
a scratch folder, then times, interleaved over `--repeats` rounds: the check as the loader runs
it, and a full single-threaded RGB decode of each file (what training reads per item) for
scale. The page extrapolates the check to an ImageNet-sized folder (1,281,167 images).

    python tools/bench_image_check.py --images 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool, scratch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGENET_TRAIN = 1_281_167


def write_images(folder: Path, n: int, width: int, height: int, fmt: str) -> list[str]:
    """`n` images in two class folders of `folder`; their paths."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, width)[None, :, None]
    paths = []
    for i in range(n):
        cls = folder / f"c{i % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(ramp + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
        path = cls / f"{i}.{fmt}"
        Image.fromarray(pixels).save(path, quality=90) if fmt == "jpg" else \
            Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def full_decode(paths: list[str]) -> None:
    from PIL import Image

    for path in paths:
        with Image.open(path) as image:
            image.convert("RGB").load()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images per format")
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "results" / "image_check.md"))
    args = parser.parse_args(argv)
    at_least("--images", args.images, 10)
    at_least("--repeats", args.repeats, 1)
    at_least("--width", [args.width, args.height], 8, "pixels of a side")
    out = check_out_file(args.out)
    from moonas.data._vision import _CHECK_THREADS, _check_images

    threads = min(_CHECK_THREADS, os.cpu_count() or 1)
    rows = []
    with scratch("moonas-image-check-") as work:
        for fmt in ("jpg", "png"):
            folder = work / fmt
            paths = write_images(folder, args.images, args.width, args.height, fmt)
            size = sum(os.path.getsize(p) for p in paths) / len(paths)
            checks, decodes = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                _check_images(str(folder), paths)
                checks.append(time.perf_counter() - start)
                start = time.perf_counter()
                full_decode(paths)
                decodes.append(time.perf_counter() - start)
            check = statistics.median(checks) / len(paths)
            decode = statistics.median(decodes) / len(paths)
            rows.append((fmt, size, check, decode))
            print(f"{fmt}: check {check * 1e3:.2f} ms/image, full decode {decode * 1e3:.2f}",
                  file=sys.stderr)
    lines = [header("The imagefolder load-time check: cost per image"), "",
             f"{args.images} images per format, {args.width} x {args.height} RGB; the check on "
             f"{threads} threads (min(8, cores)); median of {args.repeats} interleaved rounds "
             "(files in the page cache after the first round).", "",
             "| format | mean file size | check (ms/image) | full RGB decode, 1 thread "
             "(ms/image) | check of 1,281,167 images (min) |", "|---|---:|---:|---:|---:|"]
    for fmt, size, check, decode in rows:
        lines.append(f"| {fmt} | {size / 1e3:.0f} kB | {check * 1e3:.2f} | {decode * 1e3:.2f} | "
                     f"{check * IMAGENET_TRAIN / 60:.0f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    from moonas.atomic import write_text

    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
