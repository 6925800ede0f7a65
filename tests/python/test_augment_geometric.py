"""seisoku.augment's geometric transforms (flips, crops, rotation, resized crop) and displace
against an independent NumPy resampler, bit for bit where the arithmetic allows."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import to_device, to_host
from seisoku import augment as sa
from test_augment import RNG, hwc, images

# ---- an independent NumPy resampler --------------------------------------------------------


def border_table(n, border, pad):
    """Index read at k + pad for k in [-pad, n + pad), -1 for the constant fill."""
    idx = np.arange(n)
    if border == "constant":
        return np.pad(idx, pad, mode="constant", constant_values=-1)
    return np.pad(idx, pad, mode=border)


def keys_weight(d):
    d = np.abs(d)
    a = -0.5
    return np.where(
        d <= 1,
        (a + 2) * d**3 - (a + 3) * d**2 + 1,
        np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0),
    )


def ref_sample(img, sx, sy, interp, border, fill):
    """img (H, W, C) read at float64 coordinates sx, sy (any shape) -> (..., C) float64."""
    h, w, _ = img.shape
    pad = 64
    tx, ty = border_table(w, border, pad), border_table(h, border, pad)
    src = img.astype(np.float64)

    def tap(ix, iy):
        jx = tx[np.clip(ix, -pad, w + pad - 1) + pad]
        jy = ty[np.clip(iy, -pad, h + pad - 1) + pad]
        inside = (jx >= 0) & (jy >= 0)
        v = src[np.maximum(jy, 0), np.maximum(jx, 0)]
        return np.where(inside[..., None], v, fill)

    if interp == "nearest":
        return tap(np.floor(sx + 0.5).astype(int), np.floor(sy + 0.5).astype(int))
    fx, fy = np.floor(sx), np.floor(sy)
    taps = range(0, 2) if interp == "bilinear" else range(-1, 3)
    acc = 0.0
    for j in taps:
        for i in taps:
            if interp == "bilinear":
                wx = 1 - np.abs(sx - (fx + i))
                wy = 1 - np.abs(sy - (fy + j))
            else:
                wx = keys_weight(sx - (fx + i))
                wy = keys_weight(sy - (fy + j))
            acc = acc + (wx * wy)[..., None] * tap(fx.astype(int) + i, fy.astype(int) + j)
    return acc


def ref_rotate(img, degrees, interp, border, fill):
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a = np.deg2rad(degrees)
    sx = np.cos(a) * (xx - cx) - np.sin(a) * (yy - cy) + cx
    sy = np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy) + cy
    return ref_sample(img, sx, sy, interp, border, fill)


def assert_matches_reference(out, ref, dtype):
    if dtype == np.uint8:
        expect = np.clip(np.floor(ref + 0.5), 0, 255)
        diff = np.abs(out.astype(np.int64) - expect)
        assert diff.max() <= 1
        assert (diff == 0).mean() > 0.97  # rounding ties only
    else:
        np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(ref).max()))


# ---- flips and crops ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("w", [5, 16, 28, 37])
def test_flips_equal_numpy(device, dtype, layout, c, w):
    # Rows shorter than, equal to, and longer than one 16-pixel shuffle (with a rest).
    x = images(w=w, c=c, dtype=dtype, layout=layout)
    h_axis, w_axis = (1, 2) if layout == "NHWC" else (2, 3)
    xd = to_device(x, device)
    out = to_host(sa.Compose([sa.HorizontalFlip(1.0)], layout=layout)(xd))
    np.testing.assert_array_equal(out, np.flip(x, w_axis))
    out = to_host(sa.Compose([sa.VerticalFlip(1.0)], layout=layout)(xd))
    np.testing.assert_array_equal(out, np.flip(x, h_axis))
    out = to_host(sa.Compose([sa.VerticalFlip(1.0), sa.HorizontalFlip(1.0)], layout=layout)(xd))
    np.testing.assert_array_equal(out, np.flip(x, (h_axis, w_axis)))


def test_flip_probability_per_sample():
    x = images(n=200)
    out = sa.Compose([sa.HorizontalFlip(0.5)], seed=3)(x)
    flipped = np.array([np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert (flipped | kept).all()
    assert 60 < flipped.sum() < 140
    np.testing.assert_array_equal(sa.Compose([sa.HorizontalFlip(0.0)])(x), x)


def find_offset(window, padded, h, w):
    for oy in range(padded.shape[0] - h + 1):
        for ox in range(padded.shape[1] - w + 1):
            if np.array_equal(padded[oy : oy + h, ox : ox + w], window):
                return oy, ox
    return None


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_crop_without_padding_is_slicing(device, layout):
    x = images(n=24, h=12, w=10, c=3, layout=layout)
    out = to_host(sa.Compose([sa.RandomCrop((7, 5))], seed=1, layout=layout)(to_device(x, device)))
    xs, os_ = hwc(x, layout), hwc(out, layout)
    assert os_.shape == (24, 7, 5, 3)
    offsets = {find_offset(o, xi, 7, 5) for o, xi in zip(os_, xs)}
    assert None not in offsets
    assert len(offsets) > 8  # offsets vary per sample


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_crop_with_padding_is_slicing_of_numpy_pad(device, mode):
    x = images(n=24, h=9, w=8, c=2)
    aug = sa.Compose([sa.RandomCrop((9, 8), padding=3, border=mode, fill=7)], seed=2)
    out = to_host(aug(to_device(x, device)))
    kw = {"constant_values": 7} if mode == "constant" else {}
    for o, xi in zip(out, x):
        padded = np.pad(xi, ((3, 3), (3, 3), (0, 0)), mode=mode, **kw)
        assert find_offset(o, padded, 9, 8) is not None


def test_crop_skipped_is_centre_crop():
    x = images(n=4, h=10, w=10)
    out = sa.Compose([sa.RandomCrop(6, p=0.0)])(x)
    np.testing.assert_array_equal(out, x[:, 2:8, 2:8])


# ---- rotation, resized crop, elastic: identities and NumPy references ---------------------


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_identities(device, interp, dtype):
    x = to_device(images(dtype=dtype, c=3), device)
    rot0 = sa.Compose([sa.RandomRotation((0, 0), interpolation=interp)])
    np.testing.assert_array_equal(to_host(rot0(x)), to_host(x))
    ela0 = sa.Compose([sa.ElasticDistortion(alpha=0, sigma=3, interpolation=interp)])
    np.testing.assert_array_equal(to_host(ela0(x)), to_host(x))
    rrc = sa.Compose([sa.RandomResizedCrop((12, 10), scale=(1, 1), ratio=(10 / 12, 10 / 12))])
    np.testing.assert_array_equal(to_host(rrc(x)), to_host(x))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_rotation_90_is_rot90(device, layout):
    x = images(n=6, h=11, w=11, c=3, dtype=np.float32, layout=layout)
    axes = (1, 2) if layout == "NHWC" else (2, 3)
    for interp in ("bilinear", "bicubic"):
        aug = sa.Compose([sa.RandomRotation((90, 90), interpolation=interp)], layout=layout)
        out = to_host(aug(to_device(x, device)))
        np.testing.assert_array_equal(out, np.rot90(x, 1, axes=axes))
        aug = sa.Compose([sa.RandomRotation((-90, -90), interpolation=interp)], layout=layout)
        np.testing.assert_array_equal(
            to_host(aug(to_device(x, device))), np.rot90(x, -1, axes=axes)
        )


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("border", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_rotation_matches_numpy_reference(interp, border, dtype):
    x = images(n=3, h=13, w=17, c=2, dtype=dtype)
    for degrees in (17.0, -128.5):
        aug = sa.Compose([sa.RandomRotation((degrees, degrees), interp, border, fill=3)])
        out = aug(x)
        for o, xi in zip(out, x):
            ref = ref_rotate(xi, degrees, interp, border, 3.0)
            if interp == "nearest":  # ties of x.5 may round either way: compare off the ties
                continue
            assert_matches_reference(o, ref, dtype)
    if interp == "nearest":
        out = sa.Compose([sa.RandomRotation((33, 33), interp, border)])(x)
        match = np.mean(
            [np.mean(o == ref_rotate(xi, 33, interp, border, 0.0)) for o, xi in zip(out, x)]
        )
        assert match > 0.97


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
def test_resized_crop_of_whole_image_is_resize(interp):
    x = images(n=2, h=16, w=12, c=3, dtype=np.float32)
    aug = sa.Compose(
        [sa.RandomResizedCrop((7, 9), scale=(1, 1), ratio=(0.75, 0.75), interpolation=interp)]
    )
    out = aug(x)
    yy, xx = np.mgrid[0:7, 0:9].astype(np.float64)
    sx = (xx + 0.5) * 12 / 9 - 0.5
    sy = (yy + 0.5) * 16 / 7 - 0.5
    for o, xi in zip(out, x):
        assert_matches_reference(o, ref_sample(xi, sx, sy, interp, "edge", 0.0), np.float32)


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("size", [16, 20])
def test_resized_crop_equals_displacement_bit_for_bit(interp, dtype, c, size):
    # A (size/2)^2 box of a size^2 image resized to size^2 reads (x / 2 + x0 - 1/4,
    # y / 2 + y0 - 1/4), exact in float32; the CPU resamples such axis-aligned maps in two
    # separable passes and displacements pixel by pixel, with the same arithmetic: equal bits
    # for some (x0, y0).
    x = images(n=4, h=size, w=size, c=c, dtype=dtype)
    aug = sa.Compose(
        [sa.RandomResizedCrop(size, scale=(0.25, 0.25), ratio=(1, 1), interpolation=interp)]
    )
    out = aug(x)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for o, xi in zip(out, x):
        found = False
        for y0 in range(size // 2 + 1):
            for x0 in range(size // 2 + 1):
                d = np.stack([xx / 2 + x0 - 0.25 - xx, yy / 2 + y0 - 0.25 - yy])[None]
                ref = sa.displace(
                    xi[None], d.astype(np.float32), interp, border="edge", layout="NHWC"
                )
                found = found or np.array_equal(ref[0], o)
        assert found


def test_resized_crop_box_within_image():
    x = images(n=64, h=20, w=20, c=1)
    aug = sa.Compose([sa.RandomResizedCrop(20, scale=(0.2, 0.5), interpolation="nearest")], seed=5)
    out = aug(x)
    assert out.shape == (64, 20, 20, 1)
    assert not np.array_equal(out, x)
    # Nearest sampling of a box inside the image: every output value occurs in the input.
    for o, xi in zip(out, x):
        assert np.isin(o, xi).all()


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("border", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_displace_matches_numpy_reference(interp, border, dtype):
    x = images(n=3, h=11, w=9, c=3, dtype=dtype)
    disp = (RNG.standard_normal((3, 2, 11, 9)) * 3).astype(np.float32)
    out = sa.displace(x, disp, interp, border, fill=2.0)
    yy, xx = np.mgrid[0:11, 0:9].astype(np.float64)
    for o, xi, d in zip(out, x, disp):
        ref = ref_sample(
            xi, xx + d[0].astype(np.float64), yy + d[1].astype(np.float64), interp, border, 2.0
        )
        if interp == "nearest":
            assert np.mean(np.abs(o.astype(np.float64) - ref) < 1e-6) > 0.97
        else:
            assert_matches_reference(o, ref, dtype)


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("c", [1, 3, 2])
def test_interior_and_border_paths_agree_bit_for_bit(interp, dtype, c):
    # Pixels near the edge of x read through the border code; the same pixels of x padded
    # by its edge values read through the interior code. Displacements on a 1/64 grid keep
    # the coordinates exact, so both must give the same bits.
    x = images(n=2, h=9, w=11, c=c, dtype=dtype)
    disp = (np.round(RNG.uniform(-2, 2, (2, 2, 9, 11)) * 64) / 64).astype(np.float32)
    out = sa.displace(x, disp, interp, border="edge", layout="NHWC")
    xp = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    dp = np.pad(disp, ((0, 0), (0, 0), (4, 4), (4, 4)))
    big = sa.displace(xp, dp, interp, border="edge", layout="NHWC")
    np.testing.assert_array_equal(big[:, 4:-4, 4:-4], out)
    # Constant border: pixels whose taps all fall outside take a shortcut; padding with the
    # fill value moves some of them inside.
    far = (np.round(RNG.uniform(-12, 12, (2, 2, 9, 11)) * 64) / 64).astype(np.float32)
    out = sa.displace(x, far, interp, border="constant", fill=7.0, layout="NHWC")
    xp = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), constant_values=7)
    dp = np.pad(far, ((0, 0), (0, 0), (4, 4), (4, 4)))
    big = sa.displace(xp, dp, interp, border="constant", fill=7.0, layout="NHWC")
    np.testing.assert_array_equal(big[:, 4:-4, 4:-4], out)


def exact_displace(img, disp, interp, border, fill):
    """The kernels' float32 arithmetic, step by step in NumPy float32 (no fused multiply-add):
    img (H, W, C) read at (x + dx, y + dy); uint8 results rounded half up and saturated."""
    h, w, _ = img.shape
    f32 = np.float32
    yy, xx = np.mgrid[0:h, 0:w].astype(f32)
    sx = np.clip(xx + disp[0], f32(-1e9), f32(1e9))
    sy = np.clip(yy + disp[1], f32(-1e9), f32(1e9))
    pad = 64
    tx, ty = border_table(w, border, pad), border_table(h, border, pad)
    src = img.astype(f32)

    def tap(ix, iy):
        jx = tx[np.clip(ix, -pad, w + pad - 1) + pad]
        jy = ty[np.clip(iy, -pad, h + pad - 1) + pad]
        v = src[np.maximum(jy, 0), np.maximum(jx, 0)]
        return np.where(((jx >= 0) & (jy >= 0))[..., None], v, f32(fill))

    def weights(s):
        if interp == "nearest":
            return np.floor(s + f32(0.5)).astype(np.int64), [np.ones_like(s)]
        f = np.floor(s)
        t = s - f
        if interp == "bilinear":
            return f.astype(np.int64), [f32(1) - t, t]
        t2 = t * t
        t3 = t2 * t
        h = f32(0.5)
        return f.astype(np.int64) - 1, [
            h * ((f32(2) * t2 - t3) - t),
            h * ((f32(3) * t3 - f32(5) * t2) + f32(2)),
            h * ((f32(4) * t2 - f32(3) * t3) + t),
            h * (t3 - t2),
        ]

    kx, wx = weights(sx)
    ky, wy = weights(sy)
    acc = np.zeros(img.shape, f32)
    for j, b in enumerate(wy):
        row = np.zeros(img.shape, f32)
        for i, a in enumerate(wx):
            row = row + a[..., None] * tap(kx + i, ky + j)
        acc = acc + b[..., None] * row
    if img.dtype == np.uint8:
        acc = np.minimum(np.where(acc > 0, acc, f32(0)), f32(255))
        return (acc + f32(0.5)).astype(np.int32).astype(np.uint8)
    return acc


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("border", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("c", [1, 3, 2])
def test_displace_is_the_float32_arithmetic_bit_for_bit(interp, border, dtype, c):
    # Coordinates near and far outside the image, rows of 21 pixels (two groups of 8 and a
    # rest), every layout of the vector kernels and their pixel-by-pixel fallbacks.
    x = images(n=3, h=10, w=21, c=c, dtype=dtype, seed=4)
    disp = (RNG.standard_normal((3, 2, 10, 21)) * 4).astype(np.float32)
    disp[0, :, :2] = RNG.uniform(-40, 40, (2, 2, 21)).astype(np.float32)
    fill = 5.0 if dtype == np.uint8 else -1.25
    for layout in ("NHWC", "NCHW"):
        xi = x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = hwc(sa.displace(xi, disp, interp, border, fill=fill, layout=layout), layout)
        for o, img, d in zip(out, x, disp):
            np.testing.assert_array_equal(o, exact_displace(img, d, interp, border, fill))


@pytest.mark.parametrize("pad_mode", ["constant", "edge", "reflect"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(("w", "size"), [(23, (17, 21)), (64, (5, 4))])
def test_axis_aligned_resampling_layouts_agree(pad_mode, dtype, w, size):
    # Padded crops, flips and resized crops compose into one axis-aligned map that reads
    # outside the image; NHWC RGB uint8 runs it in separable passes, NCHW pixel by pixel.
    # 64 -> 4 shrinks rows 5 to 16 times: taps too far apart for the byte shuffles.
    x = images(n=24, h=19, w=w, c=3, dtype=dtype, seed=9)
    steps = [
        sa.RandomCrop((19, w), padding=6, border=pad_mode, fill=9),
        sa.HorizontalFlip(),
        sa.RandomResizedCrop(size, scale=(0.2, 1.0)),
        sa.VerticalFlip(),
    ]
    nhwc = sa.Compose(steps, seed=3, layout="NHWC")(x)
    nchw = sa.Compose(steps, seed=3, layout="NCHW")(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    if pad_mode == "constant":  # the fill was read
        assert (nhwc == 9).mean() > 0.01


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("w", [12, 28, 40])
def test_padded_crop_and_flip_uint8_rows_equal_the_float_path(layout, w):
    """Shifted mirrored rows (only part of each row read inside the source) take the uint8
    shuffle path; the float32 path of the same plan is the reference."""
    x = images(n=24, h=w, w=w, c=1, dtype=np.uint8, layout=layout, seed=2)
    pipe = [sa.RandomCrop(w, padding=5), sa.HorizontalFlip(0.5)]
    out8 = sa.Compose(pipe, layout=layout, seed=9)(x)
    out32 = sa.Compose(pipe, layout=layout, seed=9)(x.astype(np.float32))
    np.testing.assert_array_equal(out8.astype(np.float32), out32)
    assert not np.array_equal(out8, x)  # the crops and flips moved something
