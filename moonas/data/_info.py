"""What is known of each dataset without loading it (no torch): its `DatasetInfo` record.

A config check, and `moonas pick` or `plot` reading a run back, need these records only."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DatasetInfo", "DIGITS_INFO", "VISION_INFOS", "IMAGEFOLDER_INFO"]


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset without loading it (resolved fully by loading)."""

    name: str
    input_size: int | None  # square image side; None = known only after loading
    in_channels: int
    n_classes: int | None
    class_names: tuple[str, ...] | None
    mean: tuple[float, ...]  # per-channel normalisation applied to every split
    std: tuple[float, ...]


# Pixel mean and std of all 1,797 images after scaling 0..16 to [0, 1].
DIGITS_INFO = DatasetInfo(
    name="digits",
    input_size=8,
    in_channels=1,
    n_classes=10,
    class_names=tuple(str(d) for d in range(10)),
    mean=(0.3053,),
    std=(0.3760,),
)

_CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
)
_CIFAR100_NAMES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
    camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
    dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
    leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid
    otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road
    rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower
    sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
    willow_tree wolf woman worm""".split()
)
_FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot"
)  # fmt: skip

VISION_INFOS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        "cifar10", 32, 3, 10, _CIFAR10_NAMES, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ),
    "cifar100": DatasetInfo(
        "cifar100", 32, 3, 100, _CIFAR100_NAMES, (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
    ),
    "mnist": DatasetInfo("mnist", 28, 1, 10, tuple(str(d) for d in range(10)), (0.1307,),
                         (0.3081,)),
    "fashion_mnist": DatasetInfo("fashion_mnist", 28, 1, 10, _FASHION_NAMES, (0.2860,), (0.3530,)),
}

IMAGEFOLDER_INFO = DatasetInfo(
    name="imagefolder",
    input_size=None,
    in_channels=3,
    n_classes=None,
    class_names=None,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)
