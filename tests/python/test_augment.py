"""seisoku.augment: transforms against NumPy references, reproducibility, devices, errors."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import seisoku
from conftest import to_device, to_host
from seisoku import augment as sa

RNG = np.random.default_rng(20240601)


def images(n=16, h=12, w=10, c=1, dtype=np.uint8, layout="NHWC", seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        x = rng.integers(1, 255, (n, h, w, c), dtype=np.uint8)
    else:
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def hwc(x, layout):
    """NHWC view of a batch."""
    return x if layout == "NHWC" else x.transpose(0, 2, 3, 1)


# ---- reproducibility --------------------------------------------------------------------


def pipeline(seed=0, layout="auto"):
    return sa.Compose(
        [
            sa.RandomCrop(12, padding=2, border="reflect"),
            sa.HorizontalFlip(),
            sa.RandomRotation(20, interpolation="bicubic"),
            sa.ElasticDistortion(4.0, 2.0),
            sa.Cutout(1, 4, p=0.5),
            sa.RandomErasing(fill="random", p=0.5),
            sa.GaussianNoise(3.0, p=0.5),
            sa.RandomResizedCrop(10, scale=(0.5, 1.0)),
            sa.VerticalFlip(),
        ],
        seed=seed,
        layout=layout,
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_determinism_by_seed_and_batch_split(dtype):
    x = images(n=30, h=14, w=13, c=3, dtype=dtype)
    a = pipeline(5)(x)
    np.testing.assert_array_equal(a, pipeline(5)(x))
    assert not np.array_equal(a, pipeline(6)(x))
    np.testing.assert_array_equal(a[10:20], pipeline(5)(x[10:20], sample_offset=10))
    assert not np.array_equal(a, pipeline(5)(x, sample_offset=30))


def test_thread_count_independence():
    x = images(n=64, h=20, w=20, c=3, dtype=np.float32)
    before = seisoku.get_num_threads()
    try:
        seisoku.set_num_threads(1)
        one = pipeline(1)(x)
        seisoku.set_num_threads(2)
        two = pipeline(1)(x)
    finally:
        seisoku.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_layouts_give_the_same_images(dtype):
    x = images(n=12, h=14, w=13, c=3, dtype=dtype)
    nhwc = pipeline(2, "NHWC")(x)
    nchw = pipeline(2, "NCHW")(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))


@pytest.mark.requires_cuda
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_cuda_equals_cpu(device, dtype, layout):
    if device != "cuda":
        pytest.skip("compares the CUDA twin with the CPU")
    x = images(n=20, h=14, w=13, c=3, dtype=dtype, layout=layout)
    labels = np.arange(20) % 10
    cpu = pipeline(8, layout)(x, labels=labels, sample_offset=7)
    gpu = pipeline(8, layout)(to_device(x, device), labels=labels, sample_offset=7)
    np.testing.assert_array_equal(to_host(gpu), cpu)
    disp = sa.elastic_displacement(3, 17, 19, 6.0, 3.0, seed=1)
    np.testing.assert_array_equal(
        to_host(sa.elastic_displacement(3, 17, 19, 6.0, 3.0, seed=1, device="cuda")), disp
    )


def test_labels_exempt_samples():
    x = images(n=20)
    labels = np.arange(20) % 10
    aug = sa.Compose([sa.RandomRotation((180, 180), skip_labels=(6, 9)), sa.HorizontalFlip(1.0)])
    out = aug(x, labels=labels)
    for o, xi, lab in zip(out, x, labels):
        if lab in (6, 9):
            np.testing.assert_array_equal(o, xi[:, ::-1])  # flipped, never turned
        else:
            np.testing.assert_array_equal(o, xi[::-1])  # turned by 180 then flipped
    # Exempting a label does not change the draws of the other samples and steps.
    steps = [sa.HorizontalFlip(0.5, skip_labels=(3,)), sa.GaussianNoise(2.0)]
    with_labels = sa.Compose(steps, seed=1)(x.astype(np.float32), labels=labels)
    without = sa.Compose(steps, seed=1)(x.astype(np.float32))
    same = labels != 3
    np.testing.assert_array_equal(with_labels[same], without[same])


def test_output_shape_and_out_argument():
    aug = sa.Compose([sa.RandomCrop((8, 6), padding=1), sa.RandomRotation(10)])
    assert aug.output_shape((5, 10, 9, 3)) == (5, 8, 6, 3)
    assert aug.output_shape((5, 3, 10, 9)) == (5, 3, 8, 6)
    x = images(n=5, h=10, w=9, c=3)
    out = np.empty((5, 8, 6, 3), np.uint8)
    assert aug(x, out=out) is out
    assert sa.Compose([])(x) is not x and np.array_equal(sa.Compose([])(x), x)


def test_results_reuse_only_memory_nothing_holds():
    import copy
    import pickle

    aug = sa.Compose([sa.RandomRotation(30)], seed=4)
    x = images(n=4, h=12, w=10, c=3)
    expected = [aug(x, sample_offset=k).copy() for k in range(6)]
    # Dropped results come back: a loop writes into at most two arrays.
    pointers = {aug(x, sample_offset=k).ctypes.data for k in range(6)}
    assert len(pointers) <= 2
    # Kept results and views of results are never written again.
    kept = aug(x, sample_offset=0)
    view = aug(x, sample_offset=1)[1:3]
    later = [aug(x, sample_offset=k) for k in range(2, 6)]
    np.testing.assert_array_equal(kept, expected[0])
    np.testing.assert_array_equal(view, expected[1][1:3])
    for k, y in enumerate(later, start=2):
        np.testing.assert_array_equal(y, expected[k])
    assert len({y.ctypes.data for y in [kept, *later]}) == 5
    # Copies and pickles leave the pool behind and start their own.
    for twin in (copy.deepcopy(aug), pickle.loads(pickle.dumps(aug))):
        np.testing.assert_array_equal(twin(x, sample_offset=5), expected[5])
    assert len(pickle.dumps(aug)) < 2048


def test_trainer_hook_reshapes_flat_batches():
    x = images(n=6, h=8, w=8, c=1, layout="NCHW", dtype=np.float32)
    hook = sa.Compose([sa.HorizontalFlip(1.0)]).trainer_hook(image_shape=(1, 8, 8))
    out = hook(x.reshape(6, 64), 3)
    np.testing.assert_array_equal(out, x[..., ::-1].reshape(6, 64))
    noisy = sa.Compose([sa.GaussianNoise(1.0)]).trainer_hook()
    assert not np.array_equal(noisy(x, 0), noisy(x, 1))
    np.testing.assert_array_equal(noisy(x, 1), noisy(x, 1))


def test_trainer_fit_takes_the_hook():
    from seisoku.train import Trainer

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (96, 64)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    model = seisoku.nn.Sequential(seisoku.nn.Linear(64, 3))
    opt = seisoku.optim.SGD(model.parameters(), lr=0.05)
    hook = sa.Compose([sa.RandomRotation(10), sa.GaussianNoise(0.05)], layout="NCHW").trainer_hook(
        image_shape=(1, 8, 8)
    )
    steps = []

    def spy(xb, step):
        steps.append(step)
        out = hook(xb, step)
        assert out.shape == xb.shape and not np.array_equal(out, xb)
        return out

    Trainer(model, seisoku.nn.CrossEntropyLoss(), opt, progress=False).fit(
        x, y, epochs=2, batch_size=32, augment=spy
    )
    assert steps == list(range(6))


def test_trainer_passes_labels_to_label_aware_hooks():
    from seisoku.train import Trainer

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (64, 64)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    # Label 2 must never be flipped; every other sample always is.
    hook = sa.Compose([sa.HorizontalFlip(1.0, skip_labels=(2,))], layout="NCHW").trainer_hook(
        image_shape=(1, 8, 8)
    )
    seen = []

    def spy(xb, step, labels):
        out = hook(xb, step, labels)
        flipped = xb.reshape(-1, 1, 8, 8)[..., ::-1].reshape(xb.shape)
        for i, label in enumerate(labels):
            np.testing.assert_array_equal(out[i], xb[i] if label == 2 else flipped[i])
        seen.append(labels.copy())
        return out

    model = seisoku.nn.Sequential(seisoku.nn.Linear(64, 4))
    opt = seisoku.optim.SGD(model.parameters(), lr=0.05)
    Trainer(model, seisoku.nn.CrossEntropyLoss(), opt, progress=False).fit(
        x, y, epochs=1, batch_size=16, augment=spy, seed=4
    )
    assert len(seen) == 4
    # The batches are the epoch's shuffled labels: all of y, each once.
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(y))
    assert any((s == 2).any() for s in seen)


# ---- pictures ---------------------------------------------------------------------------


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert zlib.crc32(kind + body) == int.from_bytes(data[pos + 8 + n : pos + 12 + n], "big")
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    channels = 3 if header[9] == 2 else 1
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * channels)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, channels)


def test_save_grid_writes_png(tmp_path):
    x = images(n=3, h=8, w=8, c=3)
    aug = sa.Compose([sa.HorizontalFlip(1.0)])
    path = aug.save_grid(str(tmp_path / "grid.png"), x, versions=2, scale=2)
    img = read_png(path)
    assert img.shape[2] == 3 and img.shape[0] == 3 * 16 + 4 * 4
    # The first cell holds the first original, scaled 2x.
    np.testing.assert_array_equal(img[4:20:2, 4:20:2], x[0])
    gray = sa.save_grid(str(tmp_path / "gray.png"), images(n=2, c=1), [images(n=2, c=1)])
    assert read_png(gray).shape[2] == 1


def test_cli_augment_show_writes_png(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from seisoku.cli import main

    path = tmp_path / "digits.png"
    assert main(["augment", "--show", "--out", str(path), "--samples", "3", "--versions", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    img = read_png(str(path))
    assert img.shape[2] == 1 and img.shape[0] > 3 * 28
    assert img.min() == 0 and img.max() == 255
    assert main(["augment", "--show", "--out", str(path), "--sigma", "-1"]) == 2
    assert "sigma" in capsys.readouterr().err


# ---- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: sa.HorizontalFlip(p=1.5), ["[HorizontalFlip] argument 'p'", "[0, 1]", "1.5"]),
        (lambda: sa.VerticalFlip(p=True), ["[VerticalFlip] argument 'p'", "number", "True"]),
        (lambda: sa.HorizontalFlip(p="0.5"), ["argument 'p'", "'0.5'"]),
        (lambda: sa.RandomRotation(10, p=-0.1), ["[RandomRotation] argument 'p'", "-0.1"]),
        (lambda: sa.RandomRotation(-5), ["[RandomRotation] argument 'degrees'", "-5"]),
        (lambda: sa.RandomRotation((20, 10)), ["argument 'degrees'", "(20, 10)"]),
        (lambda: sa.RandomRotation((1, 2, 3)), ["argument 'degrees'", "pair", "(1, 2, 3)"]),
        (lambda: sa.RandomRotation(10, interpolation="cubic"), ["'interpolation'", "'cubic'"]),
        (lambda: sa.RandomRotation(10, border="wrap"), ["argument 'border'", "'wrap'"]),
        (lambda: sa.RandomRotation(10, fill=float("nan")), ["argument 'fill'", "nan"]),
        (lambda: sa.ElasticDistortion(34, -1.0), ["[ElasticDistortion] argument 'sigma'", "-1"]),
        (lambda: sa.ElasticDistortion(34, 2e6), ["argument 'sigma'", "1e6", "2e+06"]),
        (lambda: sa.ElasticDistortion(float("inf")), ["argument 'alpha'", "inf"]),
        (lambda: sa.ElasticDistortion(34, "4"), ["argument 'sigma'", "number", "'4'"]),
        (lambda: sa.RandomCrop(0), ["[RandomCrop] argument 'size'", "(0, 0)"]),
        (lambda: sa.RandomCrop((8, 8, 1)), ["argument 'size'", "pair", "(8, 8, 1)"]),
        (lambda: sa.RandomCrop(8.5), ["argument 'size'", "int", "8.5"]),
        (lambda: sa.RandomCrop(8, padding=-2), ["argument 'padding'", "-2"]),
        (lambda: sa.RandomCrop(8, padding=1.0), ["argument 'padding'", "int", "1.0"]),
        (lambda: sa.RandomCrop(8, border="mirror"), ["argument 'border'", "'mirror'"]),
        (lambda: sa.RandomResizedCrop(8, scale=(0.5, 0.1)), ["argument 'scale'", "(0.5, 0.1)"]),
        (lambda: sa.RandomResizedCrop(8, scale=0.5), ["argument 'scale'", "pair", "0.5"]),
        (lambda: sa.RandomResizedCrop(8, ratio=(0, 1)), ["argument 'ratio'", "(0, 1)"]),
        (lambda: sa.GaussianNoise(-2), ["[GaussianNoise] argument 'std'", "-2"]),
        (lambda: sa.Cutout(-1), ["[Cutout] argument 'count'", "-1"]),
        (lambda: sa.Cutout(1, 0), ["[Cutout] argument 'size'", "0"]),
        (lambda: sa.Cutout(True), ["argument 'count'", "True"]),
        (lambda: sa.RandomErasing(fill="noise"), ["[RandomErasing] argument 'fill'", "'noise'"]),
        (lambda: sa.RandomErasing(scale=(0.0, 0.5)), ["argument 'scale'", "(0, 0.5)"]),
        (lambda: sa.HorizontalFlip(skip_labels=(6, "9")), ["argument 'skip_labels'", "'9'"]),
        (lambda: sa.HorizontalFlip(skip_labels=6), ["argument 'skip_labels'", "6"]),
        (lambda: sa.Compose([sa.HorizontalFlip()], seed=-1), ["[Compose] argument 'seed'", "-1"]),
        (lambda: sa.Compose([sa.HorizontalFlip()], layout="HWC"), ["argument 'layout'", "HWC"]),
        (lambda: sa.Compose([lambda x: x]), ["[Compose] argument 'transforms'"]),
    ],
)
def test_bad_arguments_name_argument_and_value(make, words):
    with pytest.raises(ValueError) as e:
        make()
    for w in words:
        assert w in str(e.value)


def test_bad_inputs_raise_value_error():
    aug = sa.Compose([sa.HorizontalFlip()])
    with pytest.raises(ValueError, match=r"\[augment\] argument 'x' must be 4-D.*\(4, 5, 3\)"):
        aug(np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match=r"argument 'x' must have dtype uint8 or float32.*float64"):
        aug(np.zeros((2, 5, 5, 3), np.float64))
    with pytest.raises(ValueError, match=r"\[RandomCrop\] argument 'size'.*14x14.*got 16x16"):
        sa.Compose([sa.RandomCrop(16, padding=2)])(np.zeros((2, 10, 10, 1), np.uint8))
    with pytest.raises(ValueError, match="argument 'layout'"):
        aug(np.zeros((2, 3, 5, 3), np.uint8))
    with pytest.raises(ValueError, match=r"argument 'labels' must have shape \(2,\), got \(3,\)"):
        aug(np.zeros((2, 5, 5, 1), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="argument 'out' must have dtype uint8, got float32"):
        aug(np.zeros((2, 5, 5, 1), np.uint8), out=np.zeros((2, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match="argument 'sample_offset'"):
        aug(np.zeros((2, 5, 5, 1), np.uint8), sample_offset=-3)
    with pytest.raises(ValueError, match=r"\[gaussian_smooth\] argument 'sigma'.*-1"):
        sa.gaussian_smooth(np.zeros((1, 4, 4), np.float32), -1.0)
    with pytest.raises(ValueError, match=r"\[gaussian_smooth\] argument 'x' must be 3-D"):
        sa.gaussian_smooth(np.zeros((4, 4), np.float32), 1.0)
    with pytest.raises(ValueError, match=r"\[elastic_displacement\] argument 'height'.*-4"):
        sa.elastic_displacement(1, -4, 4, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\[elastic_displacement\] argument 'step_index'"):
        sa.elastic_displacement(1, 4, 4, 1.0, 1.0, step_index=-1)
    with pytest.raises(ValueError, match=r"\[displace\] argument 'disp' must have shape"):
        sa.displace(np.zeros((1, 6, 6, 1), np.uint8), np.zeros((1, 2, 3, 6), np.float32))
    with pytest.raises(ValueError, match=r"\[displace\] argument 'interpolation'.*'linear'"):
        sa.displace(np.zeros((1, 6, 6, 1), np.uint8), np.zeros((1, 2, 6, 6), np.float32), "linear")


def test_transforms_read_back_their_arguments():
    t = sa.RandomRotation(15, interpolation="bicubic", skip_labels=(6, 9))
    assert t.degrees == (-15.0, 15.0) and t.interpolation == "bicubic" and t.skip_labels == (6, 9)
    assert repr(t).startswith("RandomRotation(degrees=(-15.0, 15.0), interpolation='bicubic'")
    assert sa.RandomCrop(8, padding=2).size == (8, 8)
    assert sa.Cutout(2, 6).size == 6 and sa.Cutout(2, 6).count == 2
    assert sa.RandomErasing(fill="random").fill == "random"
    assert sa.RandomErasing(fill=3).fill == 3.0 and sa.RandomErasing().p == 0.5
    assert sa.GaussianNoise(np.float32(2.5)).std == 2.5
    assert sa.HorizontalFlip(skip_labels={9, 6}).skip_labels in ((6, 9), (9, 6))
    assert sa.VerticalFlip(skip_labels=np.array([3])).skip_labels == (3,)
    with pytest.raises(AttributeError):
        t.degrees = (0, 1)


def test_large_batches_stream_the_same_bits():
    # Outputs of 16 MB and more are written with streaming stores: the same bits as small
    # batches with the matching sample_offset.
    x = np.random.default_rng(0).integers(0, 256, (112, 224, 224, 3), dtype=np.uint8)
    for aug in (
        sa.Compose([sa.HorizontalFlip(0.5)], seed=3),
        sa.Compose([sa.RandomCrop(224, padding=8, border="reflect")], seed=3),
        sa.Compose([sa.VerticalFlip(1.0), sa.RandomCrop(224, padding=4)], seed=5),
    ):
        big = aug(x)
        assert big.nbytes >= 16 << 20
        parts = np.concatenate([aug(x[i : i + 8], sample_offset=i) for i in range(0, 112, 8)])
        np.testing.assert_array_equal(big, parts)
