"""seisoku.augment's in-place transforms: cutout, random erasing, Gaussian noise."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import to_device, to_host
from seisoku import augment as sa
from test_augment import hwc, images


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_cutout_touches_only_its_squares(device, layout):
    x = images(n=40, h=20, w=18, c=3, layout=layout)  # values >= 1, fill 0
    out = to_host(sa.Compose([sa.Cutout(2, 6)], seed=4, layout=layout)(to_device(x, device)))
    xs, os_ = hwc(x, layout), hwc(out, layout)
    for o, xi in zip(os_, xs):
        changed = (o != xi).any(axis=2)
        assert ((o == 0) | ~changed[..., None]).all()  # changed pixels are 0 in every channel
        assert (o[changed] == 0).all()
        # Every changed pixel lies in a changed 6x6 square (clipped at the border), and two
        # squares hold them all.
        assert 9 <= changed.sum() <= 72
        for y, x in zip(*np.nonzero(changed)):
            assert any(
                changed[max(y0, 0) : y0 + 6, max(x0, 0) : x0 + 6].all()
                for y0 in range(y - 5, y + 1)
                for x0 in range(x - 5, x + 1)
            )


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_erasing_touches_only_one_box(device, dtype):
    x = images(n=40, h=24, w=20, c=3, dtype=dtype)
    if dtype == np.float32:
        x = np.abs(x) + 1
    for value in (0.0, "random"):
        aug = sa.Compose([sa.RandomErasing(scale=(0.05, 0.3), fill=value, p=1.0)], seed=9)
        out = to_host(aug(to_device(x, device)))
        erased = 0
        for o, xi in zip(out, x):
            changed = (o != xi).any(axis=2)
            if not changed.any():
                continue
            erased += 1
            ys, xs_ = np.nonzero(changed)
            box = (slice(ys.min(), ys.max() + 1), slice(xs_.min(), xs_.max() + 1))
            np.testing.assert_array_equal(o[~changed], xi[~changed])
            area = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
            assert 0.04 * 480 <= area <= 0.31 * 480
            if value == 0.0:
                assert (o[box] == 0).all()
        assert erased >= 35
    if dtype == np.float32:  # random values are standard normal
        vals = out[out != x]
        assert abs(vals.mean()) < 0.1 and abs(vals.std() - 1) < 0.1


def test_noise_float_and_saturating_uint8(device):
    xf = np.full((8, 16, 16, 3), 250.0, np.float32)
    aug = sa.Compose([sa.GaussianNoise(20.0)], seed=6)
    yf = to_host(aug(to_device(xf, device)))
    z = (yf - 250.0) / 20.0
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    yu = to_host(aug(to_device(xf.astype(np.uint8), device)))
    np.testing.assert_array_equal(yu, np.clip(np.floor(yf + 0.5), 0, 255).astype(np.uint8))
    assert (yu == 255).mean() > 0.3
    np.testing.assert_array_equal(sa.Compose([sa.GaussianNoise(0.0)])(xf), xf)


def test_noise_and_random_fill_draw_the_same_normals():
    # Both key element e of step 0 by Philox block e // 4: the batched noise path (vectorized
    # Box-Muller on the CPU) must give the bits of the per-element path of random erasing.
    x = np.zeros((6, 20, 20, 3), np.float32)
    noise = sa.Compose([sa.GaussianNoise(1.0)], seed=3)(x)
    erased = sa.Compose([sa.RandomErasing(scale=(0.5, 0.9), fill="random", p=1.0)], seed=3)(x)
    mask = erased != 0
    assert mask.sum() > 6 * 0.4 * 1200
    np.testing.assert_array_equal(erased[mask], noise[mask])


@pytest.mark.parametrize(("h", "w"), [(16, 12), (13, 7), (70, 3), (9, 20)])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_noise_layouts_agree(h, w, dtype):
    # NHWC noise runs in pixel chunks when H * W % 4 == 0 (uint8 RGB 8 pixels at a time
    # where 32 bytes can be read), element by element otherwise; uint8 saturates.
    x = images(n=3, h=h, w=w, c=3, dtype=dtype)
    std = 40.0 if dtype == np.uint8 else 2.0
    aug = sa.Compose([sa.GaussianNoise(std)], seed=4)
    nhwc = sa.Compose([sa.GaussianNoise(std)], seed=4, layout="NHWC")(x)
    nchw = sa.Compose([sa.GaussianNoise(std)], seed=4, layout="NCHW")(
        np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    )
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    assert not np.array_equal(aug(x), x)
    if dtype == np.uint8:
        assert (nhwc == 0).any() and (nhwc == 255).any()
