"""Tests for moonas.data: digits splits, loaders, imagefolder, and torchvision on generated stand-ins."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from moonas.data import DATASETS, DataSplits, dataset_info, load_dataset, make_loader
from moonas.errors import ConfigError, DataError

N_DIGITS = 1797


def _indices(split: torch.utils.data.Dataset) -> np.ndarray:
    return np.asarray(split.indices)


def _stack(split: torch.utils.data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(split[i] for i in range(len(split))))
    return torch.stack(xs), torch.stack(ys)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset("digits", seed=0)


def test_digits_shapes_and_classes(digits: DataSplits) -> None:
    info = digits.info
    assert (info.name, info.input_size, info.in_channels, info.n_classes) == ("digits", 8, 1, 10)
    assert info.class_names == tuple(str(d) for d in range(10))
    assert info == dataset_info("digits")
    for split in (digits.train, digits.val, digits.test):
        x, y = split[0]
        assert x.shape == (1, 8, 8) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and y.ndim == 0
        _, ys = _stack(split)
        assert set(ys.tolist()) == set(range(10))


def test_digits_splits_are_disjoint_and_cover_everything(digits: DataSplits) -> None:
    train, val, test = (_indices(s) for s in (digits.train, digits.val, digits.test))
    assert (len(train), len(val), len(test)) == (N_DIGITS - 2 * 359, 359, 359)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(N_DIGITS))


def test_digits_splits_are_stratified(digits: DataSplits) -> None:
    all_labels = torch.cat([digits.train.labels, digits.val.labels, digits.test.labels])
    totals = torch.bincount(all_labels, minlength=10).double()
    for split in (digits.val, digits.test):
        counts = torch.bincount(split.labels, minlength=10).double()
        assert torch.all((counts - totals * len(split) / N_DIGITS).abs() <= 2)


def test_digits_labels_attribute_matches_items(digits: DataSplits) -> None:
    _, ys = _stack(digits.val)
    assert torch.equal(ys, digits.val.labels)


def test_digits_same_seed_same_splits_other_seed_different() -> None:
    a, b, c = (
        load_dataset("digits", seed=3),
        load_dataset("digits", seed=3),
        load_dataset("digits", seed=4),
    )
    for name in ("train", "val", "test"):
        assert np.array_equal(_indices(getattr(a, name)), _indices(getattr(b, name)))
        assert not np.array_equal(_indices(getattr(a, name)), _indices(getattr(c, name)))
    xa, ya = _stack(a.val)
    xb, yb = _stack(b.val)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_digits_are_normalised(digits: DataSplits) -> None:
    x, _ = _stack(digits.train)
    assert abs(x.mean().item()) < 0.05
    assert abs(x.std().item() - 1.0) < 0.05
    # The raw scale is 0..16 mapped to [0, 1]: the smallest value is the normalised 0.
    assert x.min().item() == pytest.approx(
        (0.0 - digits.info.mean[0]) / digits.info.std[0], abs=1e-5
    )


def test_digits_max_train_and_image_size() -> None:
    splits = load_dataset("digits", seed=1, max_train=50, image_size=16)
    assert len(splits.train) == 50 and len(splits.val) == 359
    assert set(splits.train.labels.tolist()) == set(range(10))  # the cap keeps every class
    assert splits.train[0][0].shape == (1, 16, 16)
    assert splits.info.input_size == 16


def test_digits_fractions_change_sizes() -> None:
    splits = load_dataset("digits", val_fraction=0.1, test_fraction=0.3)
    assert (len(splits.val), len(splits.test)) == (180, 539)


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction"),
    [(0.6, 0.4), (0.7, 0.5), (-0.1, 0.2), (0.2, -0.1), (0.0, 0.2), (1.0, 0.0)],
)
def test_fractions_out_of_range_raise_config_error(
    val_fraction: float, test_fraction: float
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_dataset("digits", val_fraction=val_fraction, test_fraction=test_fraction)
    assert "fraction" in _one_line(exc)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_train": 0}, "data.max_train=0 must be a positive integer or null"),
     ({"image_size": 0}, r"data.image_size=0 must be a positive integer \(e.g. 32\) or null"),
     ({"seed": -1}, "seed=-1 is not a non-negative integer")],
    ids=["max_train", "image_size", "seed"],
)
def test_bad_values_raise_config_error(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_dataset("digits", **kwargs)


# ---------------------------------------------------------------- names and static info


@pytest.mark.parametrize("call", [load_dataset, dataset_info])
def test_unknown_name_lists_valid_names_and_closest(call: object) -> None:
    with pytest.raises(DataError) as exc:
        call("cifar-10")  # type: ignore[operator]
    message = _one_line(exc)
    assert all(name in message for name in DATASETS)
    assert "did you mean 'cifar10'" in message


def test_dataset_info_without_loading() -> None:
    cifar = dataset_info("cifar10")
    assert (cifar.input_size, cifar.in_channels, cifar.n_classes, len(cifar.mean)) == (32, 3, 10, 3)
    assert cifar.class_names is not None and cifar.class_names[0] == "airplane"
    assert len(dataset_info("cifar100").class_names or ()) == 100
    assert dataset_info("mnist").in_channels == 1
    folder = dataset_info("imagefolder")
    assert (folder.input_size, folder.n_classes, folder.class_names) == (None, None, None)
    assert dataset_info("imagefolder", image_size=24).input_size == 24
    for name in DATASETS:
        info = dataset_info(name)
        assert info.name == name and len(info.mean) == len(info.std) == info.in_channels


# ---------------------------------------------------------------- loaders


def _batches(loader: torch.utils.data.DataLoader) -> list[torch.Tensor]:
    return [y for _, y in loader]


def test_make_loader_is_deterministic_for_a_seed(digits: DataSplits) -> None:
    first = _batches(make_loader(digits.train, 64, shuffle=True, seed=7))
    again = _batches(make_loader(digits.train, 64, shuffle=True, seed=7))
    other = _batches(make_loader(digits.train, 64, shuffle=True, seed=8))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert torch.equal(torch.cat(first).sort().values, digits.train.labels.sort().values)


def test_make_loader_without_shuffle_keeps_order_and_drop_last(digits: DataSplits) -> None:
    loader = make_loader(digits.val, 100, shuffle=False, seed=0, drop_last=True)
    batches = _batches(loader)
    assert len(batches) == len(digits.val) // 100
    assert torch.equal(torch.cat(batches), digits.val.labels[: 100 * len(batches)])
    x, _ = next(iter(loader))
    assert x.shape == (100, 1, 8, 8)


def test_make_loader_rejects_bad_batch_size(digits: DataSplits) -> None:
    with pytest.raises(ConfigError):
        make_loader(digits.train, 0, shuffle=True, seed=0)


# ---------------------------------------------------------------- imagefolder

_FOLDER_COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "eel": (0, 0, 255)}


def _write_folder(root: Path, per_class: int = 6) -> None:
    for name, colour in _FOLDER_COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (10 + i, 7 + 2 * i)  # varied sizes: loading must resize
            Image.new("RGB", size, colour).save(root / name / f"{i}.png")
    # A grayscale image must come back as RGB.
    Image.new("L", (9, 9), 128).save(root / "cat" / "gray.png")
    (root / "dog" / "notes.txt").write_text("not an image")


def test_imagefolder_loads_classes_and_sizes(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs")
    splits = load_dataset("imagefolder", root=str(tmp_path / "imgs"), image_size=12, seed=0)
    info = splits.info
    assert info.class_names == ("cat", "dog", "eel") and info.n_classes == 3
    assert (info.input_size, info.in_channels) == (12, 3)
    sizes = [len(s) for s in (splits.train, splits.val, splits.test)]
    assert sum(sizes) == 19 and sizes[1] == sizes[2] == 4
    for split in (splits.train, splits.val, splits.test):
        for i in range(len(split)):
            x, y = split[i]
            assert x.shape == (3, 12, 12)
            pixel = x[:, 6, 6] * 0.5 + 0.5  # undo mean/std 0.5
            name = info.class_names[int(y)]
            if not torch.allclose(pixel, pixel[0].expand(3)):  # the gray image has equal channels
                assert int(pixel.argmax()) == int(np.argmax(_FOLDER_COLOURS[name]))


def test_imagefolder_default_size_is_32(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs")
    splits = load_dataset("imagefolder", root=tmp_path / "imgs")
    assert splits.info.input_size == 32 and splits.val[0][0].shape == (3, 32, 32)


def test_imagefolder_val_is_never_augmented(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs")
    plain = load_dataset("imagefolder", root=tmp_path / "imgs", seed=2)
    augmented = load_dataset("imagefolder", root=tmp_path / "imgs", seed=2, augment=True)
    assert torch.equal(_stack(plain.val)[0], _stack(augmented.val)[0])
    assert not torch.equal(_stack(plain.train)[0], _stack(augmented.train)[0])


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder")
    assert "data.root" in _one_line(exc)
    missing = tmp_path / "missing"
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=missing)
    assert str(missing) in _one_line(exc)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=empty)
    assert str(empty) in _one_line(exc)
    (empty / "cat").mkdir()
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=empty)
    assert "subfolder" in _one_line(exc)


def test_imagefolder_with_one_class_is_refused(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs")
    for name in ("dog", "eel"):  # only cat is left: every prediction would be right
        for file in (tmp_path / "imgs" / name).iterdir():
            file.unlink()
        (tmp_path / "imgs" / name).rmdir()
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=tmp_path / "imgs")
    message = _one_line(exc)
    assert str(tmp_path / "imgs") in message and "'cat'" in message
    assert "at least 2 class folders" in message


def _random_image(path: Path, side: int = 64) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path.read_bytes()


def test_imagefolder_unreadable_images_are_one_line(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _write_folder(root)
    (root / "cat" / "bad.png").write_text("x\n")  # not an image at all
    whole = _random_image(tmp_path / "whole.png")
    (root / "dog" / "cut.png").write_bytes(whole[: len(whole) // 2])  # a PNG cut in half
    (root / "eel" / "notes.jpg").write_text("a text file with an image's extension")
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=root)
    message = _one_line(exc)
    assert str(root) in message and "3 unreadable images" in message
    for name in ("cat/bad.png", "dog/cut.png", "eel/notes.jpg"):
        assert name in message
    assert "remove or replace them" in message and "BufferedReader" not in message
    (root / "dog" / "cut.png").unlink()
    (root / "eel" / "notes.jpg").unlink()
    with pytest.raises(DataError, match=r"an unreadable image: cat/bad.png .*replace it$"):
        load_dataset("imagefolder", root=root)


def _split_holding(splits: DataSplits, path: Path) -> tuple[torch.utils.data.Dataset, int]:
    for split in (splits.train, splits.val, splits.test):
        where = [str(file) for file, _ in split.source.samples].index(str(path))
        if where in split.indices:
            return split, int(np.flatnonzero(split.indices == where)[0])
    raise AssertionError(f"{path} is in no split")


@pytest.mark.parametrize("workers", [0, 2])
def test_imagefolder_image_that_fails_to_decode_is_one_line(tmp_path: Path, workers: int) -> None:
    # A JPEG cut in half after the check at load time (the folder changed meanwhile): decoding
    # it fails when the item is read, in this process or in a DataLoader worker.
    root = tmp_path / "imgs"
    _write_folder(root)
    cut = root / "eel" / "cut.jpg"
    whole = _random_image(cut)
    split, position = _split_holding(load_dataset("imagefolder", root=root, seed=0), cut)
    cut.write_bytes(whole[: len(whole) // 2])
    loader = make_loader(split, 4, shuffle=False, seed=0, batches=[[position]], workers=workers)
    with pytest.raises(DataError) as exc:
        list(loader)
    message = _one_line(exc)
    assert message.startswith(f"imagefolder image {cut} cannot be read (OSError: image file is")
    assert message.endswith("remove or replace it")


# ---------------------------------------------------------------- CIFAR-10 stand-in

_CIFAR_NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_cifar10(
    root: Path, monkeypatch: pytest.MonkeyPatch, per_batch: int = 8, n_test: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A cifar-10-batches-py folder in the real pickle format; the class's md5 list is pointed at it.

    Returns (train images (N, 32, 32, 3) uint8, train labels, test images).
    """
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name: str, entry: dict[str, object]) -> list[str]:
        path = folder / name
        path.write_bytes(pickle.dumps(entry, protocol=2))
        return [name, _md5(path)]

    images, labels, train_list = [], [], []
    for b in range(1, 6):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        batch_labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        train_list.append(dump(
            f"data_batch_{b}", {"batch_label": f"batch {b}", "data": data, "labels": batch_labels}
        ))
        images.append(data)
        labels += batch_labels
    test_data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_list = [dump(
        "test_batch", {"data": test_data, "labels": [int(v) for v in rng.integers(0, 10, n_test)]}
    )]
    meta_md5 = dump("batches.meta", {"label_names": _CIFAR_NAMES, "num_vis": 3072})[1]

    # torchvision checks each file's md5 against the real dataset's; point it at the stand-in's
    # so the real integrity check and loading code run unchanged.
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", test_list)
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": meta_md5})

    def hwc(flat: np.ndarray) -> np.ndarray:
        return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    return hwc(np.vstack(images)), np.asarray(labels), hwc(test_data)


def _normalised(
    images: np.ndarray, info_mean: tuple[float, ...], info_std: tuple[float, ...]
) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(info_mean).view(1, -1, 1, 1)
    std = torch.tensor(info_std).view(1, -1, 1, 1)
    return (x - mean) / std


def test_cifar10_standin_loads_through_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_images, train_labels, test_images = _write_cifar10(tmp_path, monkeypatch)
    splits = load_dataset(
        "cifar10", root=str(tmp_path), val_fraction=0.25, test_fraction=0.9, seed=0
    )
    info = splits.info
    assert info.class_names == tuple(_CIFAR_NAMES)  # from the meta file
    assert (info.input_size, info.in_channels, info.n_classes) == (32, 3, 10)
    # test_fraction is ignored
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 10)
    assert sorted(
        np.concatenate([_indices(splits.train), _indices(splits.val)]).tolist()
    ) == list(range(40))
    expected = _normalised(train_images, info.mean, info.std)
    x, y = _stack(splits.val)
    assert torch.allclose(x, expected[_indices(splits.val)], atol=1e-6)
    assert torch.equal(y, torch.from_numpy(train_labels[_indices(splits.val)]))
    x_test, _ = _stack(splits.test)
    assert torch.allclose(x_test, _normalised(test_images, info.mean, info.std), atol=1e-6)


def test_cifar10_augments_train_only_and_deterministically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_images, _, _ = _write_cifar10(tmp_path, monkeypatch)
    splits = load_dataset("cifar10", root=tmp_path, augment=True, seed=5)
    info = splits.info
    expected = _normalised(train_images, info.mean, info.std)
    # val: exactly the stored images, every time
    for _ in range(2):
        assert torch.allclose(_stack(splits.val)[0], expected[_indices(splits.val)], atol=1e-6)
    # train: cropped/flipped copies, so not all equal the stored images; same seed, same sequence
    train_x = _stack(splits.train)[0]
    assert train_x.shape == (len(splits.train), 3, 32, 32)
    assert not torch.allclose(train_x, expected[_indices(splits.train)])
    again = load_dataset("cifar10", root=tmp_path, augment=True, seed=5)
    assert torch.equal(_stack(again.train)[0], train_x)
    plain = load_dataset("cifar10", root=tmp_path, augment=False, seed=5)
    assert torch.allclose(_stack(plain.train)[0], expected[_indices(plain.train)], atol=1e-6)


def test_cifar10_resize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cifar10(tmp_path, monkeypatch)
    splits = load_dataset("cifar10", root=tmp_path, image_size=16, augment=True)
    assert splits.info.input_size == 16
    assert (
        splits.train[0][0].shape == splits.val[0][0].shape == splits.test[0][0].shape == (3, 16, 16)
    )


def test_cifar10_wrong_checksums_are_reported_as_such_not_as_missing(tmp_path: Path) -> None:
    # Without the md5 patch the real files' checksums are expected: the stand-in is rejected,
    # and the message must say why (the folder is there) rather than "not found".
    with pytest.MonkeyPatch.context() as patch:
        _write_cifar10(tmp_path, patch)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", root=tmp_path)
    message = _one_line(exc)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "official checksums" in message and "data_batch_1" in message
    assert "data.download=true" in message and "replace the folder" in message
    assert "not found" not in message


def _write_dummy_files(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"not the official file")


def test_cifar100_wrong_checksums_and_a_partial_folder(tmp_path: Path) -> None:
    cls = torchvision.datasets.CIFAR100
    names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    folder = tmp_path / "cifar-100-python"
    _write_dummy_files(folder, names)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar100", root=tmp_path)
    message = _one_line(exc)
    assert str(folder) in message and "official checksums" in message and "not found" not in message
    (folder / "test").unlink()
    with pytest.raises(DataError) as exc:
        load_dataset("cifar100", root=tmp_path)
    message = _one_line(exc)
    assert str(folder) in message and "lacks test " in message and "data.download=true" in message


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_partial_or_unreadable_folder_is_not_missing(
    tmp_path: Path, name: str, folder: str
) -> None:
    _write_mnist(tmp_path, folder)
    raw = tmp_path / folder / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as exc:
        load_dataset(name, root=tmp_path)
    message = _one_line(exc)
    assert str(raw) in message and "lacks t10k-labels-idx1-ubyte" in message
    assert "not found" not in message and "data.download=true" in message
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(12) % 10)
    (raw / "train-images-idx3-ubyte").write_bytes(b"garbage, not an idx file")  # fails an assert
    with pytest.raises(DataError) as exc:
        load_dataset(name, root=tmp_path)
    message = _one_line(exc)
    assert "could not be read" in message and str(raw) in message and "not found" not in message


@pytest.mark.parametrize(("name", "holds"), [("cifar10", "cifar-10-batches-py"),
                                             ("cifar100", "cifar-100-python"),
                                             ("mnist", "MNIST"),
                                             ("fashion_mnist", "FashionMNIST")])  # fmt: skip
def test_missing_dataset_names_path_and_fix(tmp_path: Path, name: str, holds: str) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as exc:
        load_dataset(name, root=str(root), download=False)
    message = _one_line(exc)
    assert name in message and str(root) in message and "download" in message and holds in message


def test_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution\nmore detail")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", root=tmp_path, download=True)
    message = _one_line(exc)
    assert "download" in message and str(tmp_path) in message and "URLError" in message


# ---------------------------------------------------------------- MNIST-like stand-ins


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The idx format: 0, 0, type code 0x08 (uint8), number of dims, big-endian int32 dims, data."""
    header = (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(
    root: Path, folder: str, n_train: int = 40, n_test: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", train)
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    _write_idx(raw / "t10k-images-idx3-ubyte", test)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)
    return train, test


def test_mnist_files_whose_labels_disagree_with_the_images_are_one_line(tmp_path: Path) -> None:
    _write_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(12) + 1)  # labels 1..12: 13 classes
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", root=tmp_path)
    message = _one_line(exc)
    assert "test set" in message and "labels from 1 to 12" in message and "10 classes" in message
    assert str(raw) in message and "imagefolder" in message
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(12) % 10)
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(30) % 10)  # 40 images
    with pytest.raises(DataError, match="training set .* has 40 images but 30 labels"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_standins_load_through_torchvision(tmp_path: Path, name: str, folder: str) -> None:
    train, test = _write_mnist(tmp_path, folder)
    splits = load_dataset(name, root=tmp_path, val_fraction=0.25, augment=True, seed=0)
    info = splits.info
    assert info == dataset_info(name)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 12)
    # stratified: 4 of each class, 1 of each in val
    assert set(splits.val.labels.tolist()) == set(range(10))
    expected = (torch.from_numpy(train).float().unsqueeze(1) / 255.0 - info.mean[0]) / info.std[0]
    # no augmentation for MNIST-likes, even with augment=True
    for split in (splits.train, splits.val):
        x, y = _stack(split)
        assert x.shape == (len(split), 1, 28, 28)
        assert torch.allclose(x, expected[_indices(split)], atol=1e-6)
        assert torch.equal(y, torch.from_numpy(_indices(split) % 10))
    x_test, y_test = _stack(splits.test)
    assert torch.allclose(
        x_test, (torch.from_numpy(test).float().unsqueeze(1) / 255.0 - info.mean[0]) / info.std[0]
    )
    assert torch.equal(y_test, torch.arange(12) % 10)


# --- whole batches built at once (augmented images in memory) ----------------------------

def _crop_flip_reference(x: torch.Tensor, padding: int, flip: bool, seed: int) -> torch.Tensor:
    """Item by item, with the draws `RandomCropFlip.batch` documents."""
    n, _, h, w = x.shape
    generator = torch.Generator().manual_seed(seed)
    offsets = (torch.randint(0, 2 * padding + 1, (n, 2), generator=generator) if padding
               else torch.zeros(n, 2, dtype=torch.int64))
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    out = []
    for item, (top, left), f in zip(x, offsets.tolist(), flips.tolist()):
        crop = torch.nn.functional.pad(item, (padding,) * 4)[:, top:top + h, left:left + w]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out)


@pytest.mark.parametrize("padding, flip", [(4, True), (0, True), (2, False), (1, True)])
def test_batched_crop_flip_is_the_item_transform(padding: int, flip: bool) -> None:
    from moonas.data._splits import RandomCropFlip

    x = torch.rand(37, 3, 10, 12)
    transform = RandomCropFlip(padding, torch.Generator(), flip=flip)
    got = transform.batch(x, torch.Generator().manual_seed(9))
    assert torch.equal(got, _crop_flip_reference(x, padding, flip, seed=9))
    if padding or flip:
        assert not torch.equal(got, x)


@pytest.mark.parametrize("size", [None, 16])
def test_a_batch_of_a_split_is_its_items(size: int | None) -> None:
    from moonas.data._splits import SplitView, TensorImages

    images = torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8)
    source = TensorImages(images, torch.arange(30) % 7, size=size)
    view = SplitView(source, np.arange(5, 25), (torch.arange(5, 25) % 7), (0.4, 0.5, 0.6),
                     (0.2, 0.25, 0.3))
    assert view.batchable()
    positions = np.array([3, 0, 19, 7])
    x, y = view.batch(positions, torch.Generator())
    items = [view[int(i)] for i in positions]
    assert torch.allclose(x, torch.stack([a for a, _ in items]), atol=1e-5)
    assert torch.equal(y, torch.stack([b for _, b in items]))


def _augmented_view(n: int = 50):
    from moonas.data._splits import RandomCropFlip, SplitView, TensorImages

    # Image i is the constant i / 255: any crop keeps the value at the centre.
    images = (torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 8, 8)).clone()
    source = TensorImages(images, torch.arange(n))
    return SplitView(source, np.arange(n), torch.arange(n), (0.0,), (1.0,),
                     augment=RandomCropFlip(2, torch.Generator()))


def test_batches_of_augmented_images_in_memory_are_built_whole_and_reproducibly() -> None:
    from moonas.distributed import World
    from moonas.search.batches import Batches

    view = _augmented_view()
    batches = Batches(view, 8, seed=4, stream=1, drop_last=True)
    assert batches.batched and not Batches(view, 8, 4, 1, True, batched=False).batched
    first = list(batches.epoch(0))
    assert len(first) == 6
    for x, y in first:  # each image is its own item, cropped (zeros at the border) or not
        assert torch.allclose(x[:, 0, 4, 4] * 255, y.float(), atol=1e-4)
    assert torch.cat([y for _, y in first]).tolist() != list(range(48))  # shuffled
    again = list(Batches(view, 8, seed=4, stream=1, drop_last=True).epoch(0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    other = list(batches.epoch(1))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))
    # Under two processes: each walks the same batches and takes its half.
    shards = [list(Batches(view, 8, seed=4, stream=1, drop_last=True,
                           world=World(r, 2, r)).epoch(0)) for r in range(2)]
    for (_, y), (_, y0), (_, y1) in zip(first, *shards):
        assert torch.equal(torch.cat([y0, y1]), y)


def test_augmented_files_read_by_workers_give_the_same_batches(tmp_path: Path) -> None:
    from moonas.search.batches import Batches

    _write_folder(tmp_path / "imgs")
    splits = load_dataset("imagefolder", root=tmp_path / "imgs", seed=2, augment=True)
    assert not splits.train.batchable()  # files on disk: read item by item
    alone = list(Batches(splits.train, 4, seed=1, stream=3, drop_last=True).epoch(0))
    workers = Batches(splits.train, 4, seed=1, stream=3, drop_last=True, workers=2)
    assert not workers.batched and workers.workers == 2
    shared = list(workers.epoch(0))
    assert len(alone) == len(shared) > 0
    for (x, y), (x2, y2) in zip(alone, shared):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    plain = _stack(load_dataset("imagefolder", root=tmp_path / "imgs", seed=2).train)[0]
    assert not torch.equal(torch.cat([x for x, _ in alone]), plain[:len(alone) * 4])
    other = list(Batches(splits.train, 4, seed=1, stream=3, drop_last=True).epoch(1))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(alone, other))


def test_an_items_augmentation_depends_on_the_epoch_and_the_item_only(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs")
    train = load_dataset("imagefolder", root=tmp_path / "imgs", seed=2, augment=True).train
    train.seed_augmentation(11)
    forward = [train[i][0] for i in range(len(train))]
    backward = [train[i][0] for i in reversed(range(len(train)))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward))
    train.seed_augmentation(12)
    assert not all(torch.equal(a, train[i][0]) for i, a in enumerate(forward))


def test_negative_workers_are_one_line() -> None:
    from moonas.config import load_config

    with pytest.raises(ConfigError, match=r"data.workers must be >= 0"):
        load_config("smoke", ["data.workers=-1"])
    assert load_config("smoke", ["data.workers=2"]).data.workers == 2


# --- the preprocessing an export's sidecar describes (`preprocess_description`) -----------


def by_hand(image: Image.Image | np.ndarray, pre: dict, mean: tuple[float, ...],
            std: tuple[float, ...]) -> torch.Tensor:
    """`image` as stored (a PIL image, or an (H, W) / (H, W, C) array) through the steps `pre`
    describes, in its order, with PIL and numpy only, as a deployment would: (C, H, W)."""
    x: Image.Image | np.ndarray = image
    for step in pre["steps"]:
        if step == "channels":
            mode = {"RGB": "RGB", "grayscale": "L"}[pre["channels"]]
            if isinstance(x, Image.Image):
                x = x.convert(mode)
            x = np.asarray(x)
            x = x[..., None] if x.ndim == 2 else x
            assert x.shape[-1] == len(mode)
        elif step == "scale":
            x = np.asarray(x, dtype=np.float64) / pre["scale"]["divide_by"]
        elif step == "resize":
            resize = pre["resize"]
            # PIL's filters always antialias (widen when shrinking): the described kind.
            assert resize["mode"] == "stretch" and resize["antialias"] is True
            assert not resize["keeps_aspect_ratio"]
            width_height = (resize["to"][1], resize["to"][0])
            kind = Image.Resampling[resize["interpolation"].upper()]
            if resize["on"] == "uint8":  # before scaling, so still 8-bit
                assert x.dtype == np.uint8
                planes = [np.asarray(Image.fromarray(x[..., c]).resize(width_height, kind))
                          for c in range(x.shape[-1])]
                x = np.stack(planes, axis=-1)
            else:  # floats in [0, 1], each channel a PIL 'F' image, clipped after
                assert resize["on"] == "float" and x.dtype == np.float64
                planes = [np.asarray(Image.fromarray(x[..., c].astype(np.float32))
                                     .resize(width_height, kind)) for c in range(x.shape[-1])]
                x = np.clip(np.stack(planes, axis=-1), 0.0, 1.0)
        else:
            assert step == "normalise" and pre["normalise"] == "(x - mean) / std per channel"
            x = (np.asarray(x, dtype=np.float64) - np.asarray(mean)) / np.asarray(std)
    assert pre["steps"][-1] == "normalise" and (pre["resize"] is None) == ("resize" not in
                                                                            pre["steps"])
    return torch.from_numpy(np.moveaxis(np.asarray(x, dtype=np.float32), -1, 0).copy())


def _check_items(split: torch.utils.data.Dataset, stored, pre: dict, info) -> None:
    """Every item of `split` is what the described steps make of its stored image."""
    side = info.input_size
    for i in range(len(split)):
        x, _ = split[i]
        assert x.shape == (info.in_channels, side, side)
        expected = by_hand(stored(int(split.indices[i])), pre, info.mean, info.std)
        torch.testing.assert_close(x, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("image_size", [None, 8, 12, 5])
def test_digits_go_through_the_preprocessing_described(image_size: int | None) -> None:
    from sklearn.datasets import load_digits

    from moonas.data import preprocess_description

    pre = preprocess_description("digits", image_size=image_size)
    assert pre["channels"] == "grayscale" and pre["scale"]["divide_by"] == 16
    if image_size in (None, 8):  # native: used as they are
        assert pre["resize"] is None
    else:  # on the floats after scaling, as torchvision sets with another image_size
        assert pre["resize"]["to"] == [image_size, image_size] and pre["resize"]["on"] == "float"
    splits = load_dataset("digits", seed=0, image_size=image_size, max_train=20)
    raw = load_digits().images  # (N, 8, 8), values 0..16
    _check_items(splits.val, lambda j: raw[j], pre, splits.info)


@pytest.mark.parametrize("image_size", [None, 20, 40])
def test_a_cifar10_standin_goes_through_the_preprocessing_described(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_size: int | None
) -> None:
    from moonas.data import preprocess_description

    train_images, _, test_images = _write_cifar10(tmp_path, monkeypatch)
    pre = preprocess_description("cifar10", image_size=image_size)
    assert pre["channels"] == "RGB" and pre["scale"]["divide_by"] == 255
    assert (pre["resize"] is None) == (image_size is None)
    splits = load_dataset("cifar10", root=tmp_path, image_size=image_size, seed=0)
    _check_items(splits.val, lambda j: train_images[j], pre, splits.info)
    _check_items(splits.test, lambda j: test_images[j], pre, splits.info)


def test_an_mnist_standin_goes_through_the_preprocessing_described(tmp_path: Path) -> None:
    from moonas.data import preprocess_description

    train, _ = _write_mnist(tmp_path, "MNIST")
    for image_size in (None, 28, 20):
        pre = preprocess_description("mnist", image_size=image_size)
        assert pre["channels"] == "grayscale" and (pre["resize"] is None) == (image_size != 20)
        splits = load_dataset("mnist", root=tmp_path, image_size=image_size, seed=0)
        _check_items(splits.val, lambda j: train[j], pre, splits.info)


def write_noisy_folder(root: Path) -> None:
    """Non-square images of random pixels (a stretch, a crop and a squeeze all differ on them),
    in the modes a folder may hold: RGB, grayscale, palette, RGBA."""
    rng = np.random.default_rng(3)
    sizes = [(10, 14), (23, 9), (32, 20), (7, 40), (14, 10), (12, 12)]  # (width, height)
    for c, name in enumerate(("ant", "bee")):
        (root / name).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            pixels = rng.integers(0, 256, size=(h, w, 4), dtype=np.uint8)
            image = Image.fromarray(pixels, "RGBA")
            mode = ("RGB", "L", "P", "RGBA")[(i + c) % 4]
            image = image.convert(mode) if mode != "P" else image.convert("RGB").quantize(16)
            image.save(root / name / f"{i}.png")


@pytest.mark.parametrize("image_size", [None, 12])
def test_imagefolder_images_go_through_the_preprocessing_described(
    tmp_path: Path, image_size: int | None
) -> None:
    """Stretched to a square on their 8-bit pixels (no crop, aspect ratio not kept), whatever
    their shape and mode."""
    from moonas.data import preprocess_description

    root = tmp_path / "imgs"
    write_noisy_folder(root)
    pre = preprocess_description("imagefolder", image_size=image_size)
    side = image_size or 32
    assert pre["channels"] == "RGB" and pre["scale"]["divide_by"] == 255
    assert pre["resize"]["to"] == [side, side] and pre["resize"]["on"] == "uint8"
    assert pre["steps"] == ["channels", "resize", "scale", "normalise"]
    splits = load_dataset("imagefolder", root=root, image_size=image_size, seed=0,
                          val_fraction=0.25, test_fraction=0.25)
    assert splits.info.input_size == side
    files = splits.val.source.samples
    for split in (splits.train, splits.val, splits.test):
        _check_items(split, lambda j: Image.open(files[j][0]), pre, splits.info)


# --- layouts and files the loaders refuse in one line, or read as documented ----------------


def _image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_a_download_that_gets_no_answer_times_out_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import socket
    import threading
    import time

    from moonas.data import _vision

    # The kernel accepts connections to a listening socket; nobody ever answers them. The
    # server closes after 40 s (a reset), so a download without a timeout fails slowly, and
    # with another message.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    closer = threading.Timer(40.0, server.close)
    closer.start()
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url",
                        f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setattr(_vision, "DOWNLOAD_TIMEOUT_S", 1.0)
    gc.collect()  # an earlier test's DataLoader workers, joined when collected, take seconds
    start = time.monotonic()
    try:
        with pytest.raises(DataError) as exc:
            load_dataset("cifar10", root=tmp_path, download=True)
    finally:
        closer.cancel()
        server.close()
    message = _one_line(exc)
    assert time.monotonic() - start < 20  # the 1 s timeout, with room for a slow machine
    assert message.startswith(f"cifar10 download into {tmp_path} failed (no answer from the "
                              "network within 1 s)")
    assert socket.getdefaulttimeout() is None  # restored


def test_the_download_timeout_is_the_documented_60_s() -> None:
    from moonas.data import _vision

    assert _vision.DOWNLOAD_TIMEOUT_S == 60  # README: "after 60 s without an answer"


def test_imagefolder_split_layout_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            for i in range(3):
                _image(root / split / name / f"{i}.png")
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=root)
    assert _one_line(exc) == (f"data.root {root} looks like a split layout (train/, val/ hold "
                              f"class folders): set data.root to {root / 'train'} (moonas "
                              "splits off val and test itself)")
    splits = load_dataset("imagefolder", root=root / "train", val_fraction=0.2,
                          test_fraction=0.2)
    assert splits.info.class_names == ("cat", "dog")


def test_imagefolder_class_folder_of_only_subfolders_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for kind in ("siamese", "tabby"):
        _image(root / "cat" / kind / "0.png")
    _image(root / "dog" / "0.png")
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=root)
    message = _one_line(exc)
    assert message.startswith(f"imagefolder at {root}: class folder cat holds only subfolders "
                              "(siamese, tabby), no images")
    assert f"set data.root to {root / 'cat'} if its subfolders are the classes" in message


def test_imagefolder_skips_hidden_folders_and_files(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _write_folder(root)
    _image(root / ".ipynb_checkpoints" / "0.png")  # hidden: not a class
    (root / "cat" / "._0.png").write_bytes(b"macOS resource fork, not an image")
    _image(root / "dog" / ".thumbs" / "0.png")
    splits = load_dataset("imagefolder", root=root, seed=0)
    assert splits.info.class_names == ("cat", "dog", "eel")
    files = [path for path, _ in splits.train.source.samples]
    assert len(files) == 19 and not any("/." in path for path in files)
    labels = torch.cat([splits.train.labels, splits.val.labels, splits.test.labels])
    assert torch.bincount(labels).tolist() == [7, 6, 6]


def test_imagefolder_images_in_subfolders_count_for_their_class_and_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    root = tmp_path / "imgs"
    _write_folder(root)
    nested = root / "eel" / "2019" / "deep.png"
    _image(nested, _FOLDER_COLOURS["eel"])
    with caplog.at_level(logging.INFO, logger="moonas.data._vision"):
        splits = load_dataset("imagefolder", root=root, seed=0)
    source = splits.train.source
    assert (str(nested), 2) in source.samples
    assert any("subfolders of class folders (eel/2019)" in record.getMessage()
               for record in caplog.records)


def test_imagefolder_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _write_folder(root)
    (root / "zz_empty").mkdir()
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=root)
    message = _one_line(exc)
    assert message.startswith(f"imagefolder at {root}: class folder zz_empty holds no images "
                              "(.jpg, .jpeg, .png,")
    assert message.endswith("): remove it or add images")
    (root / "yy_texts").mkdir()
    (root / "yy_texts" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"class folders yy_texts, zz_empty hold no images \("):
        load_dataset("imagefolder", root=root)


@pytest.mark.parametrize(("name", "download"), [("imagefolder", False), ("cifar10", False),
                                                ("cifar10", True), ("mnist", False),
                                                ("mnist", True)])
def test_data_root_that_is_a_file_is_one_line(tmp_path: Path, name: str, download: bool) -> None:
    root = tmp_path / "afile.txt"
    root.write_text("not a folder")
    kwargs = {"download": download} if name != "imagefolder" else {}
    with pytest.raises(DataError) as exc:
        load_dataset(name, root=root, **kwargs)
    assert _one_line(exc).startswith(f"data.root {root} is a file, not a folder: set data.root ")


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_files_of_another_image_side_are_refused(
    tmp_path: Path, name: str, folder: str
) -> None:
    _write_mnist(tmp_path, folder)
    images = tmp_path / folder / "raw" / "train-images-idx3-ubyte"
    _write_idx(images, np.zeros((40, 32, 32)))
    with pytest.raises(DataError) as exc:
        load_dataset(name, root=tmp_path)
    message = _one_line(exc)
    assert message.startswith(f"{images} holds 32x32 images, not {name}'s 28x28: delete ")


def test_a_cut_jpeg_is_refused_at_load_time(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _write_folder(root)
    whole = _random_image(tmp_path / "whole.jpg")
    (root / "eel" / "cut.jpg").write_bytes(whole[: len(whole) * 9 // 10])  # its header is whole
    with pytest.raises(DataError) as exc:
        load_dataset("imagefolder", root=root)
    message = _one_line(exc)
    assert message.startswith(f"imagefolder at {root} has an unreadable image: eel/cut.jpg "
                              "(OSError: image file is truncated")
    (root / "eel" / "cut.jpg").write_bytes(whole)
    assert len(load_dataset("imagefolder", root=root).info.class_names or ()) == 3


def test_check_images_false_leaves_a_damaged_image_to_the_read_that_needs_it(
        tmp_path: Path) -> None:
    """`data.check_images: false` skips the load-time decode of every image (0.5 ms a JPEG,
    results/image_check.md: minutes on a large folder); the damaged file is then named by the
    read that meets it, in one line."""
    root = tmp_path / "imgs"
    _write_folder(root)
    whole = _random_image(tmp_path / "whole.jpg")
    (root / "eel" / "cut.jpg").write_bytes(whole[: len(whole) * 9 // 10])
    data = load_dataset("imagefolder", root=root, check_images=False)
    assert len(data.info.class_names or ()) == 3
    with pytest.raises(DataError, match=r"cut\.jpg"):
        for split in (data.train, data.val, data.test):
            for i in range(len(split)):
                split[i]
    from moonas.config import load_config

    assert load_config("smoke", ["data.check_images=false"]).data.check_images is False


def test_16_bit_grayscale_keeps_its_top_8_bits(tmp_path: Path) -> None:
    from moonas.data import preprocess_description

    root = tmp_path / "imgs"
    levels = {"dark": 0x1234, "light": 0xABCD}  # 8-bit: 0x12 = 18 and 0xAB = 171
    for name, value in levels.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            pixels = np.full((6, 6), value, dtype=np.uint16)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    with Image.open(root / "dark" / "0.png") as image:
        assert image.mode == "I;16"
    splits = load_dataset("imagefolder", root=root, image_size=6, seed=0, val_fraction=0.25,
                          test_fraction=0.25)
    for split in (splits.train, splits.val, splits.test):
        for i in range(len(split)):
            x, y = split[i]
            top = levels[splits.info.class_names[int(y)]] >> 8
            assert torch.allclose(x, torch.full_like(x, (top / 255 - 0.5) / 0.5), atol=1e-6)
    convert = preprocess_description("imagefolder")["convert"]
    assert "I;16" in convert and "value >> 8" in convert and "convert('RGB')" in convert


def test_data_root_at_the_dataset_folder_itself_names_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_cifar10(tmp_path, monkeypatch)
    inner = tmp_path / "cifar-10-batches-py"
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", root=inner)
    assert _one_line(exc) == (f"data.root {inner} is cifar10's cifar-10-batches-py folder itself: "
                              f"set data.root to the folder that holds it, {tmp_path}")
    _write_mnist(tmp_path, "MNIST")
    for inner in (tmp_path / "MNIST", tmp_path / "MNIST" / "raw"):
        with pytest.raises(DataError) as exc:
            load_dataset("mnist", root=inner)
        assert _one_line(exc).endswith(f"MNIST folder itself: set data.root to the folder that "
                                       f"holds it, {tmp_path}")


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("the test forbids the network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)


def test_a_cifar_archive_not_unpacked_is_unpacked_by_download_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tarfile

    _write_cifar10(tmp_path / "made", monkeypatch)
    root = tmp_path / "data"
    root.mkdir()
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "made" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "tgz_md5", _md5(archive))  # "official"
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", root=root)
    assert _one_line(exc).startswith(f"cifar10 archive {archive} is not unpacked: pass "
                                     "data.download=true to unpack it (no network needed")
    _no_network(monkeypatch)
    splits = load_dataset("cifar10", root=root, download=True)
    assert len(splits.test) == 10


def test_packed_mnist_files_are_unpacked_by_download_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    _write_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    resources = []
    for url, _ in torchvision.datasets.MNIST.resources:
        packed = raw / url
        packed.write_bytes(gzip.compress((raw / packed.stem).read_bytes()))
        (raw / packed.stem).unlink()
        resources.append((url, _md5(packed)))  # as if the official files
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", root=tmp_path)
    assert _one_line(exc).startswith(f"mnist folder {raw} holds train-images-idx3-ubyte.gz, ")
    assert "pass data.download=true to unpack them (no network needed" in _one_line(exc)
    _no_network(monkeypatch)
    assert len(load_dataset("mnist", root=tmp_path, download=True).test) == 12


def test_a_name_in_the_wrong_case_gets_a_suggestion_but_is_not_accepted() -> None:
    from moonas.config import load_config
    from moonas.registry import closest

    assert closest("CIFAR10", DATASETS) == " (did you mean 'cifar10'?)"
    assert closest("Fashion_MNIST", DATASETS) == " (did you mean 'fashion_mnist'?)"
    with pytest.raises(ConfigError, match=r"unknown dataset 'CIFAR10' \(did you mean 'cifar10'"):
        load_config("smoke", ["data.name=CIFAR10"])
    # The Python API's own check gives the same hint.
    with pytest.raises(DataError, match=r"unknown dataset 'CIFAR10' \(did you mean 'cifar10'"):
        load_dataset("CIFAR10")


def test_the_names_the_package_exposed_still_import_and_load_torch_on_use() -> None:
    """The loaders moved behind names loaded on first use (a config check needs no torch);
    every one `moonas.data` exposed before still imports from it."""
    code = ("import sys, moonas.data as d\nassert 'torch' not in sys.modules\n"
            "from moonas.data import (DataSplits, DatasetInfo, digits_preprocess, "
            "imagefolder_preprocess, load_digits_splits, load_imagefolder_splits, "
            "load_torchvision_splits, make_loader, vision_preprocess)\n"
            "assert all(map(callable, (digits_preprocess, imagefolder_preprocess, "
            "load_digits_splits, load_imagefolder_splits, load_torchvision_splits, "
            "make_loader, vision_preprocess)))\n"
            "assert {'load_digits_splits', 'make_loader'} <= set(dir(d))\n"
            "assert DataSplits.__name__ == 'DataSplits' and DatasetInfo.__name__ == 'DatasetInfo'\n")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
