"""torchvision datasets (CIFAR, MNIST-likes, ImageFolder); the package's only torchvision import."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import pickle
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from moonas.data._info import IMAGEFOLDER_INFO, VISION_INFOS, DatasetInfo
from moonas.data._splits import (
    NORMALISE,
    RESIZE_ANTIALIAS,
    RESIZE_INTERPOLATION,
    UINT8_MAX,
    DataSplits,
    RandomCropFlip,
    SplitView,
    TensorImages,
    channels_name,
    resize_step,
    split_indices,
    split_seeds,
    tensor_preprocess,
)
from moonas.errors import DataError

__all__ = [
    "DEFAULT_ROOT",
    "DEFAULT_IMAGE_SIZE",
    "VISION_INFOS",
    "IMAGEFOLDER_INFO",
    "load_torchvision_splits",
    "load_imagefolder_splits",
    "vision_preprocess",
    "imagefolder_preprocess",
]

logger = logging.getLogger(__name__)

# where torchvision datasets live when data.root is not given (relative to the cwd)
DEFAULT_ROOT = "data"
DEFAULT_IMAGE_SIZE = 32  # imagefolder images are resized to this side when image_size is not given

@dataclass(frozen=True)
class _VisionSpec:
    info: DatasetInfo
    torchvision_class: str  # attribute of torchvision.datasets
    holds: str  # what data.root must contain, for the not-found message
    crop_flip: bool  # whether augment=True adds random crop + horizontal flip
    names_from_files: bool  # CIFAR reads class names from its meta file; MNIST-likes' are fixed


_SPECS: dict[str, _VisionSpec] = {
    "cifar10": _VisionSpec(VISION_INFOS["cifar10"], "CIFAR10", "cifar-10-batches-py",
                           crop_flip=True, names_from_files=True),
    "cifar100": _VisionSpec(VISION_INFOS["cifar100"], "CIFAR100", "cifar-100-python",
                            crop_flip=True, names_from_files=True),
    "mnist": _VisionSpec(VISION_INFOS["mnist"], "MNIST", "MNIST/raw",
                         crop_flip=False, names_from_files=False),
    "fashion_mnist": _VisionSpec(VISION_INFOS["fashion_mnist"], "FashionMNIST",
                                 "FashionMNIST/raw", crop_flip=False, names_from_files=False),
}

#: The PIL mode every imagefolder image is converted to when read (`_read_rgb`).
_FOLDER_MODE = "RGB"

_FOLDER_FIX = "set data.root to a folder with one subfolder of images (.png, .jpg, ...) per class"

#: Names of class folders that mean the root holds splits, each with the class folders inside.
_SPLIT_NAMES = ("train", "training", "val", "valid", "validation", "test", "testing", "dev")

#: 16-bit integer grayscale modes (PNG, TIFF); `_read_rgb` keeps their top 8 bits (value >> 8),
#: as `convert` alone would clip everything above 255 to white.
_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

#: Seconds a download waits on the network (to connect, or for the next block of data) before
#: it fails: torchvision's urlopen has no timeout, so a server that never answers would hang.
DOWNLOAD_TIMEOUT_S = 60.0

#: Threads that decode imagefolder images at the check at load time (PIL releases the GIL).
_CHECK_THREADS = 8


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _UnreadableImage(DataError):
    """An image file of an imagefolder that cannot be decoded, found when an item is read.

    A DataLoader worker re-raises it in the training process as `_UnreadableImage(text)`,
    `text` being the worker's whole traceback; the last line of that is this error's own
    line, which is all it keeps (the CLI prints one line).
    """

    def __init__(self, message: str) -> None:
        lines = message.strip().splitlines()
        if len(lines) > 1:
            marker = f"{type(self).__name__}: "
            message = lines[-1].split(marker, 1)[-1]
        super().__init__(message)


def _read_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for a file that is not an image, is cut short or is damaged."""
    import struct

    from PIL import Image

    # OSError: unidentified, truncated or unreadable files; SyntaxError: a broken PNG chunk
    return (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _why_unreadable(exc: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):  # its text repeats the path as a file object
        return "not an image format PIL can read"
    if isinstance(exc, OSError) and exc.strerror:  # its text repeats the path
        return f"{type(exc).__name__}: {exc.strerror}"
    return _one_line(exc, 80)


def _image_problem(path: str) -> str | None:
    """Why the image file at `path` cannot be used, or None: its header must name a format
    PIL reads, formats with checksums (PNG: every chunk) must pass `verify`, and the whole
    image must decode (`verify` does not decode a JPEG's data: a cut one would pass)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.draft("RGB", (1, 1))  # JPEG: decode at 1/8 scale, still reading all the data
            image.load()
    except _read_errors() as exc:
        return _why_unreadable(exc)
    return None


def _check_images(root: str, paths: list[str]) -> None:
    """Raise one DataError naming the files under `root` that `_image_problem` refuses."""
    with ThreadPoolExecutor(min(_CHECK_THREADS, os.cpu_count() or 1)) as pool:
        problems = list(pool.map(_image_problem, paths))
    bad = [f"{os.path.relpath(path, root)} ({problem})"
           for path, problem in zip(paths, problems) if problem is not None]
    if bad:
        what, them = ("an unreadable image", "it") if len(bad) == 1 else (
            f"{len(bad)} unreadable images", "them")
        raise DataError(f"imagefolder at {root} has {what}: {_some(bad)}: remove or replace {them}")


def _read_rgb(path: str) -> Any:
    """The image at `path` as an RGB PIL image (ImageFolder's loader; 16-bit grayscale keeps
    its top 8 bits first); a file that fails to decode (changed since the check at load time)
    is a one-line error."""
    from PIL import Image

    try:
        with open(path, "rb") as file:
            image = Image.open(file)
            if image.mode in _16BIT_MODES:
                top = np.clip(np.asarray(image, dtype=np.int64) >> 8, 0, 255)
                image = Image.fromarray(top.astype(np.uint8), "L")
            return image.convert(_FOLDER_MODE)
    except _read_errors() as exc:
        raise _UnreadableImage(
            f"imagefolder image {path} cannot be read ({_why_unreadable(exc)}): "
            "remove or replace it"
        ) from exc


def _resolve_root(root: str | os.PathLike[str] | None) -> str:
    return os.path.abspath(
        os.path.expanduser(os.fspath(root if root is not None else DEFAULT_ROOT))
    )


def _expected_files(cls: type) -> list[tuple[str, str | None]]:
    """(name, md5 or None) of each file torchvision needs in the dataset's folder (`spec.holds`)."""
    from torchvision import datasets

    if issubclass(cls, datasets.CIFAR10):  # CIFAR-100 too: every batch and the meta file, by md5
        entries = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
        return [(str(file), str(md5)) for file, md5 in entries]
    # MNIST-likes: torchvision only checks that the unpacked raw files exist
    return [(os.path.splitext(os.path.basename(url))[0], None) for url, _ in cls.resources]


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _unreadable(name: str, spec: _VisionSpec, root: str, exc: BaseException) -> DataError:
    return DataError(
        f"{name} under {root} could not be read ({_one_line(exc)}): "
        f"delete {os.path.join(root, spec.holds)} and pass data.download=true to fetch it again"
    )


def _not_loaded(
    name: str, spec: _VisionSpec, cls: type, root: str, exc: BaseException
) -> DataError:
    """Why torchvision refused `root`: no folder, files missing, checksums wrong, or unreadable.

    torchvision says "not found or corrupted" for each; only an absent folder is "not found".
    """
    from torchvision.datasets.utils import check_md5

    folder = os.path.join(root, spec.holds)
    if not os.path.isdir(folder):
        return _not_found(name, spec, cls, root)
    expected = _expected_files(cls)
    missing = [file for file, _ in expected if not os.path.isfile(os.path.join(folder, file))]
    packed = [f"{file}.gz" for file in missing
              if os.path.isfile(os.path.join(folder, f"{file}.gz"))]
    if missing and len(packed) == len(missing):  # MNIST-likes: the downloaded .gz, not unpacked
        return DataError(
            f"{name} folder {folder} holds {_some(packed)} but not their unpacked files: pass "
            f"data.download=true to unpack them (no network needed when they are the official "
            f"files), or gunzip them there"
        )
    if missing:
        return DataError(
            f"{name} folder {folder} lacks {_some(missing)} (a partial download, or other files): "
            f"pass data.download=true to download it again, or replace the folder with a complete "
            f"{spec.holds}"
        )
    wrong = [f for f, md5 in expected if md5 and not check_md5(os.path.join(folder, f), md5)]
    if wrong:
        return DataError(
            f"{name} folder {folder} does not match the official checksums ({_some(wrong)}; "
            f"a partial download, or other files): pass data.download=true to download it again, "
            f"or replace the folder with the official {spec.holds}"
        )
    return _unreadable(name, spec, root, exc)


def _not_found(name: str, spec: _VisionSpec, cls: type, root: str) -> DataError:
    """No `spec.holds` folder under `root`: `root` may be that folder itself, or hold the
    downloaded archive, not unpacked."""
    top = spec.holds.split("/")[0]
    for inner in dict.fromkeys((spec.holds, top)):  # data.root = .../MNIST/raw or .../MNIST
        if root.endswith(os.sep + os.path.normpath(inner)):
            parent = root[: -len(inner) - 1] or os.sep
            return DataError(
                f"data.root {root} is {name}'s {top} folder itself: set data.root to the folder "
                f"that holds it, {parent}"
            )
    archive = getattr(cls, "filename", None)  # CIFAR: the downloaded .tar.gz
    if archive and os.path.isfile(os.path.join(root, archive)):
        return DataError(
            f"{name} archive {os.path.join(root, archive)} is not unpacked: pass "
            f"data.download=true to unpack it (no network needed when it is the official "
            f"archive), or unpack it there (tar -xzf)"
        )
    return DataError(
        f"{name} not found under {root}: pass data.download=true to fetch it, "
        f"or set data.root to the folder that holds {spec.holds}"
    )


@contextlib.contextmanager
def _download_timeout() -> Any:
    """Every socket opened meanwhile waits at most DOWNLOAD_TIMEOUT_S for each step."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def _timed_out(exc: BaseException) -> bool:
    """Whether `exc` (or the URLError's reason, or an error it was raised from) is a timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or isinstance(getattr(seen, "reason", None),
                                                        TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _open(name: str, spec: _VisionSpec, root: str, *, train: bool, download: bool) -> Any:
    """The torchvision dataset object, with its failures turned into one-line DataErrors."""
    from torchvision import datasets

    cls = getattr(datasets, spec.torchvision_class)
    try:
        with _download_timeout() if download else contextlib.nullcontext():
            return cls(root, train=train, download=download)
    except (RuntimeError, OSError) as exc:  # OSError covers FileNotFoundError and URLError
        if download:
            why = (f"no answer from the network within {DOWNLOAD_TIMEOUT_S:g} s"
                   if _timed_out(exc) else _one_line(exc))
            raise DataError(
                f"{name} download into {root} failed ({why}): "
                "check the network, or copy "
                f"{spec.holds} into {root} by hand"
            ) from exc
        raise _not_loaded(name, spec, cls, root, exc) from exc
    # torchvision's MNIST reader checks a file's header with assert
    except (EOFError, ValueError, AssertionError, pickle.UnpicklingError) as exc:
        raise _unreadable(name, spec, root, exc) from exc


def _images_file(dataset: Any) -> str | None:
    """The file an MNIST-like `dataset` read its images from (torchvision's naming), or None."""
    if not hasattr(dataset, "raw_folder"):  # CIFAR: several batch files, always 32x32
        return None
    prefix = "train" if dataset.train else "t10k"
    return os.path.join(dataset.raw_folder, f"{prefix}-images-idx3-ubyte")


def _in_memory(
    dataset: Any, size: int | None, n_classes: int, where: str, fix: str, *, name: str, side: int
) -> TensorImages:
    """The torchvision dataset's arrays as (N, C, H, W) uint8 images and int64 labels; files
    whose images are not `side` square (`name`'s side), whose images and labels disagree in
    number, or whose labels fall outside the `n_classes` classes, are one DataError (`where`
    names the set, `fix` what to do)."""
    data = dataset.data
    if isinstance(data, np.ndarray):  # CIFAR: (N, H, W, C) uint8
        images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    else:  # MNIST-likes: (N, H, W) uint8 tensor, of the side the file's header says
        images = torch.as_tensor(data).unsqueeze(1)
    if tuple(images.shape[-2:]) != (side, side):
        height, width = images.shape[-2:]
        raise DataError(f"{_images_file(dataset) or where} holds {height}x{width} images, not "
                        f"{name}'s {side}x{side}: {fix}")
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    if len(images) != len(labels):
        raise DataError(f"{where} has {len(images)} images but {len(labels)} labels: {fix}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise DataError(f"{where} has labels from {int(labels.min())} to {int(labels.max())}, "
                        f"outside the {n_classes} classes 0..{n_classes - 1}: {fix}")
    return TensorImages(images, labels, size=size)


def _resized_side(spec: _VisionSpec, image_size: int | None) -> int | None:
    """The side a torchvision set's images are stretched to, or None: used at their native side."""
    native = spec.info.input_size or 0  # always set for torchvision datasets
    size = image_size or native
    return None if size == native else size


def vision_preprocess(name: str, image_size: int | None) -> dict:
    """How `load_torchvision_splits(name, image_size=...)` turns a stored 8-bit image into a
    network input (see `tensor_preprocess`)."""
    spec = _SPECS[name]
    return tensor_preprocess(spec.info.in_channels, UINT8_MAX, "8-bit pixel values 0..255",
                             _resized_side(spec, image_size))


def _folder_side(image_size: int | None) -> int:
    return image_size or DEFAULT_IMAGE_SIZE


def _folder_transform(size: int) -> Any:
    """An imagefolder image (PIL, `_FOLDER_MODE`) -> float (C, size, size) in [0, 1]: stretched
    on its 8-bit pixels (PIL, which always antialiases), then divided by 255 (ToTensor)."""
    from torchvision import transforms

    resize = transforms.Resize((size, size), antialias=RESIZE_ANTIALIAS,
                               interpolation=transforms.InterpolationMode(RESIZE_INTERPOLATION))
    return transforms.Compose([resize, transforms.ToTensor()])


def imagefolder_preprocess(image_size: int | None) -> dict:
    """How `load_imagefolder_splits(image_size=...)` turns an image file into a network input:
    convert to RGB, stretch its 8-bit pixels to the side, scale to [0, 1], normalise."""
    return {"steps": ["channels", "resize", "scale", "normalise"],
            "channels": channels_name(IMAGEFOLDER_INFO.in_channels),
            "convert": f"PIL: 16-bit grayscale (modes {', '.join(_16BIT_MODES)}) first keeps "
                       "its top 8 bits (value >> 8, clipped to 0..255, as mode L); then "
                       f"image.convert('{_FOLDER_MODE}') (grayscale copied to the 3 channels, "
                       "a palette expanded, alpha dropped, not blended)",
            "resize": resize_step(_folder_side(image_size), on="uint8"),
            "scale": {"divide_by": UINT8_MAX, "from": "8-bit pixel values 0..255",
                      "to": [0.0, 1.0]},
            "normalise": NORMALISE}


def _augmenter(enabled: bool, size: int, generator: torch.Generator) -> RandomCropFlip | None:
    # Pad by 1/8 of the side: 4 pixels at 32, the standard CIFAR recipe.
    return RandomCropFlip(max(1, size // 8), generator) if enabled else None


def load_torchvision_splits(
    name: str,
    *,
    root: str | None,
    download: bool,
    seed: int,
    val_fraction: float,
    image_size: int | None,
    augment: bool,
    max_train: int | None,
) -> DataSplits:
    """Official train set split into train/val by `val_fraction`; the official test set is the test split."""
    spec = _SPECS[name]
    root_path = _resolve_root(root)
    if os.path.exists(root_path) and not os.path.isdir(root_path):
        raise DataError(f"data.root {root_path} is a file, not a folder: set data.root to the "
                        f"folder that holds {spec.holds} (or to a new folder, with "
                        f"data.download=true)")
    train_set = _open(name, spec, root_path, train=True, download=download)
    test_set = _open(name, spec, root_path, train=False, download=False)
    resized = _resized_side(spec, image_size)
    size = resized or spec.info.input_size or 0  # always set for torchvision datasets
    names = (
        tuple(train_set.classes) if spec.names_from_files else tuple(spec.info.class_names or ())
    )
    fix = (f"delete {os.path.join(root_path, spec.holds)} and pass data.download=true to fetch "
           f"it again (a dataset of another kind in {name}'s format: use imagefolder)")
    train_source, test_source = (
        _in_memory(part, resized, len(names), f"{name}'s {which} set under {root_path}", fix,
                   name=name, side=spec.info.input_size or 0)
        for part, which in ((train_set, "training"), (test_set, "test")))

    split_rng, generator = split_seeds(seed)
    train, val, _ = split_indices(
        train_source.labels.numpy(), val_fraction, 0.0, split_rng, max_train=max_train
    )
    if augment and not spec.crop_flip:
        logger.info("%s has no augmentation; augment=True changes nothing", name)
    info = dataclasses.replace(spec.info, input_size=size, n_classes=len(names), class_names=names)
    labels = train_source.labels
    logger.info(
        "%s from %s: %d train, %d val, %d test",
        name, root_path, len(train), len(val), len(test_source),
    )
    return DataSplits(
        info=info,
        train=SplitView(
            train_source,
            train,
            labels[train],
            info.mean,
            info.std,
            augment=_augmenter(augment and spec.crop_flip, size, generator),
        ),
        val=SplitView(train_source, val, labels[val], info.mean, info.std),
        test=SplitView(
            test_source, np.arange(len(test_source)), test_source.labels, info.mean, info.std
        ),
    )


def _hidden(name: str) -> bool:
    """A file or folder named .name (.ipynb_checkpoints, macOS's ._x.jpg): never data."""
    return name.startswith(".")


def _visible_image(root: str, path: str) -> bool:
    """Whether `path` under `root` is an image file (by extension) outside hidden folders."""
    from torchvision.datasets.folder import is_image_file

    parts = os.path.relpath(path, root).split(os.sep)
    return is_image_file(path) and not any(_hidden(part) for part in parts)


def _class_folders(root: str) -> list[str]:
    """The class folders of the imagefolder at `root`, sorted, hidden ones skipped; a class
    folder that holds no image directly (empty, or only subfolders: a train/val split layout)
    is a one-line DataError."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, is_image_file

    entries = [entry for entry in os.scandir(root) if not _hidden(entry.name)]
    classes = sorted(entry.name for entry in entries if entry.is_dir())
    if not classes:
        loose = sum(entry.is_file() and is_image_file(entry.name) for entry in entries)
        what = f"holds {loose} images but no class folders" if loose else "has no class folders"
        raise DataError(f"imagefolder at {root} {what}: {_FOLDER_FIX}")
    only_subfolders: dict[str, list[str]] = {}
    empty = []
    for name in classes:
        inside = [entry for entry in os.scandir(os.path.join(root, name))
                  if not _hidden(entry.name)]
        if any(entry.is_file() and is_image_file(entry.name) for entry in inside):
            continue
        subfolders = sorted(entry.name for entry in inside if entry.is_dir())
        if subfolders:
            only_subfolders[name] = subfolders
        else:
            empty.append(name)
    splits = [name for name in only_subfolders if name.lower() in _SPLIT_NAMES]
    if splits:
        train = next((name for name in splits if name.lower().startswith("train")), splits[0])
        raise DataError(
            f"data.root {root} looks like a split layout ({', '.join(f'{n}/' for n in splits)} "
            f"hold class folders): set data.root to {os.path.join(root, train)} (moonas splits "
            "off val and test itself)"
        )
    if only_subfolders:
        name, subfolders = next(iter(only_subfolders.items()))
        raise DataError(
            f"imagefolder at {root}: class folder {name} holds only subfolders "
            f"({_some(subfolders)}), no images: move its images into {name}/ itself, or set "
            f"data.root to {os.path.join(root, name)} if its subfolders are the classes"
        )
    if len(empty) == len(classes):
        raise DataError(f"imagefolder at {root} has no images in its class folders "
                        f"({_some(empty)}): {_FOLDER_FIX}")
    if empty:
        folders, hold, them = ((f"class folder {empty[0]}", "holds", "it") if len(empty) == 1
                               else (f"class folders {_some(empty)}", "hold", "them"))
        raise DataError(f"imagefolder at {root}: {folders} {hold} no images "
                        f"({', '.join(IMG_EXTENSIONS)}): remove {them} or add images")
    return classes


def _keep_classes(folder: Any, classes: list[str]) -> None:
    """Narrow the ImageFolder `folder` to `classes` (its others, hidden, have no samples)."""
    if folder.classes == classes:
        return
    new = {folder.class_to_idx[name]: i for i, name in enumerate(classes)}
    folder.samples = folder.imgs = [(path, new[target]) for path, target in folder.samples]
    folder.targets = [target for _, target in folder.samples]
    folder.classes = list(classes)
    folder.class_to_idx = {name: i for i, name in enumerate(classes)}


def _log_nested(root: str, folder: Any) -> None:
    """Say which images lie in subfolders of their class folder (they count as that class)."""
    nested = sorted({os.path.relpath(os.path.dirname(path), root) for path, target in folder.samples
                     if os.path.dirname(path) != os.path.join(root, folder.classes[target])})
    if nested:
        logger.info("imagefolder %s: the images in subfolders of class folders (%s) count as "
                    "their class folder's class", root, _some(nested))


def load_imagefolder_splits(
    *,
    root: str | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    image_size: int | None,
    augment: bool,
    max_train: int | None,
    check_images: bool = True,
) -> DataSplits:
    """ImageFolder at `root` (RGB, resized to `image_size`), split train/val/test by the
    fractions; `check_images`: every image decoded first (`_check_images`)."""
    from torchvision import datasets

    if root is None:
        raise DataError(f"imagefolder needs data.root: {_FOLDER_FIX}")
    root_path = _resolve_root(root)
    if os.path.isfile(root_path):
        raise DataError(f"data.root {root_path} is a file, not a folder: {_FOLDER_FIX}")
    if not os.path.isdir(root_path):
        raise DataError(f"imagefolder root {root_path} does not exist: {_FOLDER_FIX}")
    size = _folder_side(image_size)
    try:
        classes = _class_folders(root_path)
        # allow_empty: hidden class folders (no sample passes `_visible_image`), dropped below
        folder = datasets.ImageFolder(root_path, transform=_folder_transform(size),
                                      loader=_read_rgb, allow_empty=True,
                                      is_valid_file=functools.partial(_visible_image, root_path))
    except OSError as exc:  # unreadable folders (permissions), or changed meanwhile
        raise DataError(
            f"imagefolder at {root_path} cannot be listed ({_one_line(exc)}): {_FOLDER_FIX}"
        ) from exc
    _keep_classes(folder, classes)
    _log_nested(root_path, folder)
    names = tuple(folder.classes)
    if len(names) < 2:  # one class: every prediction is right, and the search ranks nothing
        raise DataError(
            f"imagefolder at {root_path} has one class folder ({names[0]!r}): a classifier needs "
            "at least 2 class folders; add a subfolder of images for each other class"
        )
    if check_images:
        _check_images(root_path, [path for path, _ in folder.samples])

    labels = torch.as_tensor(np.asarray(folder.targets), dtype=torch.int64)
    split_rng, generator = split_seeds(seed)
    try:
        train, val, test = split_indices(
            labels.numpy(), val_fraction, test_fraction, split_rng, max_train=max_train
        )
    except DataError as exc:
        raise DataError(f"imagefolder at {root_path}: {exc}") from exc
    info = dataclasses.replace(
        IMAGEFOLDER_INFO, input_size=size, n_classes=len(names), class_names=names
    )
    logger.info(
        "imagefolder %s: %d classes, %d train, %d val, %d test",
        root_path, len(names), len(train), len(val), len(test),
    )
    return DataSplits(
        info=info,
        train=SplitView(
            folder, train, labels[train], info.mean, info.std,
            augment=_augmenter(augment, size, generator),
        ),
        val=SplitView(folder, val, labels[val], info.mean, info.std),
        test=SplitView(folder, test, labels[test], info.mean, info.std),
    )
