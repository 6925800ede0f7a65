"""seisoku.augment label_map: transforms that skip or relabel the classes they would change,
checked against NumPy flips, the draws left alone, the labels returned, and bad maps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import seisoku.augment as sa
from conftest import to_device, to_host


def _images(n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 5, 7, 1), dtype=np.float32)


def test_relabel_flips_every_sample_and_maps_its_label(device: str) -> None:
    x = _images(5)
    y = np.array([0, 1, 2, -1, 1])
    aug = sa.Compose([sa.HorizontalFlip(p=1.0, label_map={1: 2, 2: 1})], seed=3)
    out, labels = aug(to_device(x, device), labels=to_device(y, device), return_labels=True)
    np.testing.assert_array_equal(to_host(out), x[:, :, ::-1])
    np.testing.assert_array_equal(to_host(labels), [0, 2, 1, -1, 2])
    assert to_host(labels).dtype == np.int64


def test_relabel_follows_the_draw_where_p_is_half() -> None:
    x = _images(64)
    y = np.arange(64) % 3
    aug = sa.Compose([sa.HorizontalFlip(p=0.5, label_map={0: 1, 1: 0})], seed=11)
    out, labels = aug(x, labels=y, return_labels=True)
    flipped = np.array([np.array_equal(out[i], x[i, :, ::-1]) for i in range(64)])
    kept = np.array([np.array_equal(out[i], x[i]) for i in range(64)])
    assert (flipped ^ kept).all() and 10 < flipped.sum() < 54
    want = np.where(flipped & (y == 0), 1, np.where(flipped & (y == 1), 0, y))
    np.testing.assert_array_equal(labels, want)
    # The map changes labels only: the same pipeline without it draws the same flips.
    plain = sa.Compose([sa.HorizontalFlip(p=0.5)], seed=11)(x)
    np.testing.assert_array_equal(out, plain)


def test_skip_entry_equals_skip_labels_and_leaves_other_draws_alone() -> None:
    x = _images(40)
    y = np.arange(40) % 4
    steps = dict(degrees=30.0, p=0.7)
    by_map = sa.Compose([sa.RandomRotation(**steps, label_map={2: "skip"})], seed=5)
    by_list = sa.Compose([sa.RandomRotation(**steps, skip_labels=(2,))], seed=5)
    plain = sa.Compose([sa.RandomRotation(**steps)], seed=5)
    a, la = by_map(x, labels=y, return_labels=True)
    a = a.copy()
    b = by_list(x, labels=y)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, y)
    np.testing.assert_array_equal(a[y == 2], x[y == 2])
    np.testing.assert_array_equal(a[y != 2], plain(x, labels=y)[y != 2])


def test_steps_see_the_label_the_previous_ones_left() -> None:
    x = _images(3)
    y = np.array([0, 1, 2])
    aug = sa.Compose(
        [
            sa.HorizontalFlip(p=1.0, label_map={0: 1}),
            sa.VerticalFlip(p=1.0, label_map={1: "skip"}),
        ],
        seed=0,
    )
    out, labels = aug(x, labels=y, return_labels=True)
    # 0 -> flipped and relabelled 1 -> the vertical flip skips it; 1 likewise; 2 gets both.
    np.testing.assert_array_equal(out[0], x[0, :, ::-1])
    np.testing.assert_array_equal(out[1], x[1, :, ::-1])
    np.testing.assert_array_equal(out[2], x[2, ::-1, ::-1])
    np.testing.assert_array_equal(labels, [1, 1, 2])


def test_without_labels_every_transform_applies() -> None:
    x = _images(4)
    aug = sa.Compose([sa.HorizontalFlip(p=1.0, label_map={0: "skip"})], seed=0)
    np.testing.assert_array_equal(aug(x), x[:, :, ::-1])


def test_label_map_reads_back_pickles_and_shows_in_repr() -> None:
    t = sa.RandomCrop(4, padding=1, label_map={3: "skip", 1: 7})
    assert t.label_map == {3: "skip", 1: 7}
    assert t.mapped_label(1) == 7 and t.mapped_label(3) == "skip" and t.mapped_label(5) == 5
    assert t.mapped_label(-1) == -1
    assert "label_map={3: 'skip', 1: 7}" in repr(t)
    assert "label_map" not in repr(sa.HorizontalFlip())
    back = pickle.loads(pickle.dumps(sa.Compose([t], seed=2)))
    assert back.transforms[0].label_map == {3: "skip", 1: 7}
    x, y = _images(6), np.array([1, 3, 0, 1, 3, 0])
    np.testing.assert_array_equal(
        back(x, labels=y, return_labels=True)[1],
        sa.Compose([t], seed=2)(x, labels=y, return_labels=True)[1],
    )


def test_relabels_property_and_trainer_hook() -> None:
    assert not sa.Compose([sa.HorizontalFlip(label_map={1: "skip", 2: 2})]).relabels
    swap = sa.Compose([sa.HorizontalFlip(label_map={1: 2, 2: 1})])
    assert swap.relabels
    with pytest.raises(ValueError, match=r"trainer_hook.*relabel"):
        swap.trainer_hook()


@pytest.mark.parametrize(
    ("label_map", "match"),
    [
        ({-1: 2}, r"\[HorizontalFlip\] argument 'label_map' must have labels >= 0 as keys"),
        ({1: -3}, r"argument 'label_map' must map each label to a label >= 0 or 'skip'"),
        ({1: "nope"}, r"argument 'label_map' must be a dict \{label: new label or 'skip'\}"),
        ({1: 1.5}, r"argument 'label_map' must be a dict"),
        ({"a": 1}, r"argument 'label_map' must be a dict"),
        ({True: 1}, r"argument 'label_map' must be a dict"),
        ([(1, 2)], r"argument 'label_map' must be a dict"),
    ],
)
def test_bad_label_maps(label_map: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sa.HorizontalFlip(label_map=label_map)


def test_label_in_skip_labels_and_label_map_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\[Cutout\] argument 'label_map' must not repeat"):
        sa.Cutout(skip_labels=(4,), label_map={4: 5})


def test_return_labels_needs_labels_of_the_batch() -> None:
    aug = sa.Compose([sa.HorizontalFlip(label_map={0: 1})])
    with pytest.raises(ValueError, match=r"\[augment\] argument 'labels' must be given"):
        aug(_images(2), return_labels=True)
    with pytest.raises(ValueError, match=r"\[augment\] argument 'labels' must have shape"):
        aug(_images(2), labels=np.zeros(3, dtype=np.int64), return_labels=True)
