"""SSIMULACRA2, vectorised with numpy and scipy.ndimage, for scoring the benchmark's outputs.

A port of the pure-Python ``ssimulacra2`` package (0.3.0, BSD-3-Clause; a dev dependency used only by
tests/test_ssimulacra2.py as the reference), computing the same scores (within 0.02 point) ~3-4x faster:

* sRGB -> linear -> XYB (opsin matrix, cube root), made positive as SSIMULACRA2 does;
* 6 scales, each halving linear RGB by 2x2 box averages (partial blocks at the edges averaged over the pixels
  they hold), stopping early when either side is under 8 pixels;
* per scale and XYB channel: Gaussian blur (sigma 1.5, radius 5) of both images, their squares and product, then
  the SSIM error map and the edge ringing / blurring maps, each pooled by 1-norm and 4-norm;
* the 108 weights over those numbers and the final polynomial and power mapping to a score up to 100.

The reference transposes every XYB image and zero-pads the blur's first axis, so its blur treats the image's
columns (x) as zero outside and its rows (y) as mirrored; that is kept here, since
swapping the two moves a 257x203 photo's score by 0.2 point.
The reference reads every image with ``convert("RGB")``, dropping alpha (its compositing code is unreachable);
here transparent images are composited on grey instead, so their hidden colours do not count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

Array = NDArray[np.float64]
Planes = NDArray[np.float32]

_NUM_SCALES = 6
_C2 = 0.0009
_SIGMA = 1.5
_TRUNCATE = 3.33
_OPSIN = np.array(
    [
        [0.30, 1.0 - 0.078 - 0.30, 0.078],
        [0.23, 1.0 - 0.078 - 0.23, 0.078],
        [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821],
    ]
)
_BIAS = 0.0037930732552754493
# Backgrounds a transparent image is composited on; the worse score counts, as in libjxl's ssimulacra2 tool.
_ALPHA_BACKGROUNDS = (0.1, 0.9)

# Indexed [channel, scale, norm, (ssim, ringing, blurring)], the order the reference consumes them in.
_WEIGHTS = np.array(
    [
        0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379, 0.0,
        1.1041726426657346, 0.00066284834129271, 0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0,
        1.8422455520539298, 11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
        1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833, 0.0,
        0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063, 0.0, 0.0,
        0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0, 17.445833984131262,
        0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296, 1.027889937768264,
        225.20515300849274, 0.0, 0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
        176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757, 0.0004485436923833408, 0.0, 0.0,
        0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0,
        8.826982764996862, 23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682, 0.9834382792465353,
        0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0, 0.0005130064588990679,
        0.0, 0.00010854057858411537,
    ]
)  # fmt: skip
_LEVELS = np.arange(256) / 255.0
_LINEAR_LUT = np.where(_LEVELS <= 0.04045, _LEVELS / 12.92, ((_LEVELS + 0.055) / 1.055) ** 2.4).astype(np.float32)


def score(reference: Image.Image, distorted: Image.Image) -> float:
    """SSIMULACRA2 of ``distorted`` against ``reference``: 100 for identical images, lower is worse.

    Any Pillow mode is accepted (grey counts as RGB); an image with transparency is composited on dark and on
    light grey and the worse score is returned.
    """
    if reference.size != distorted.size:
        raise ValueError(f"sizes differ: {reference.size} vs {distorted.size}")
    ref_rgb, ref_alpha = _srgb(reference)
    dist_rgb, dist_alpha = _srgb(distorted)
    if ref_alpha is None and dist_alpha is None:
        return _score_linear(_to_linear(ref_rgb), _to_linear(dist_rgb))
    return min(
        _score_linear(
            _to_linear(_composite(ref_rgb, ref_alpha, background)),
            _to_linear(_composite(dist_rgb, dist_alpha, background)),
        )
        for background in _ALPHA_BACKGROUNDS
    )


def _srgb(image: Image.Image) -> tuple[NDArray[Any], Array | None]:
    """sRGB as (height, width, 3): uint8 if opaque, else in [0, 1] with alpha in [0, 1]."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
        return rgba[..., :3], rgba[..., 3]
    return np.asarray(image.convert("RGB"), dtype=np.uint8), None


def _composite(rgb: NDArray[Any], alpha: Array | None, background: float) -> Array:
    if alpha is None:
        return rgb / 255.0 if rgb.dtype == np.uint8 else rgb
    # Over a flat grey in sRGB values, as a page shows a transparent image.
    return rgb * alpha[..., None] + background * (1.0 - alpha[..., None])


def _to_linear(srgb: NDArray[Any]) -> Planes:
    """(height, width, 3) sRGB -> linear float32 planes (3, width, height), transposed like the reference."""
    # float32 halves the blurs' time; scores move by under 0.02 points (tests/test_ssimulacra2.py).
    planar = np.ascontiguousarray(srgb.transpose(2, 1, 0))
    if planar.dtype == np.uint8:
        # The 256 possible values once, instead of a power per pixel.
        result: Planes = _LINEAR_LUT[planar]
        return result
    return np.where(planar <= 0.04045, planar / 12.92, ((planar + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _xyb(planes: Planes) -> Planes:
    """Positive XYB of linear RGB planes."""
    mixed = np.tensordot(_OPSIN.astype(np.float32), planes, axes=1)
    mixed += _BIAS
    np.maximum(mixed, 0.0, out=mixed)
    np.cbrt(mixed, out=mixed)
    mixed -= np.float32(np.cbrt(_BIAS))
    x = 0.5 * (mixed[0] - mixed[1])
    y = 0.5 * (mixed[0] + mixed[1])
    return np.stack([x * 14.0 + 0.42, y + 0.01, mixed[2] - y + 0.55])


def _downsample(planes: Planes) -> Planes:
    """2x2 box average; a partial block at either far edge averages the pixels it has."""
    c, a, b = planes.shape
    padded = np.zeros((c, a + a % 2, b + b % 2), dtype=planes.dtype)
    padded[:, :a, :b] = planes
    sums = padded[:, 0::2, 0::2] + padded[:, 1::2, 0::2] + padded[:, 0::2, 1::2] + padded[:, 1::2, 1::2]
    counts = np.full(sums.shape[1:], 4.0, dtype=planes.dtype)
    if a % 2:
        counts[-1] /= 2
    if b % 2:
        counts[:, -1] /= 2
    result: Planes = (sums / counts).astype(np.float32, copy=False)
    return result


def _blur(planes: Planes) -> Planes:
    """Gaussian blur of (..., width, height) planes: zeros beyond the width axis, mirrored beyond the height axis."""
    out: Planes = ndimage.gaussian_filter1d(planes, _SIGMA, axis=-2, mode="constant", cval=0.0, truncate=_TRUNCATE)
    ndimage.gaussian_filter1d(out, _SIGMA, axis=-1, mode="reflect", truncate=_TRUNCATE, output=out)
    return out


def _pool(maps: Planes) -> tuple[Planes, Planes]:
    """1-norm and 4-norm of each (width, height) plane."""
    squared = maps * maps
    return maps.mean(axis=(-2, -1)), np.mean(squared * squared, axis=(-2, -1)) ** 0.25


def _scale_features(img1: Planes, img2: Planes, weights: Array) -> Planes:
    """(3 channels, 2 norms, 3 features) for one scale; those whose ``weights`` are all 0 are left at 0."""
    # Skipping zero-weighted maps leaves the score unchanged; at full scale only Y needs SSIM, a third less blur.
    used = np.flatnonzero(weights.any(axis=(1, 2)))
    ssim_used = np.flatnonzero(weights[:, :, 0].any(axis=1))
    features = np.zeros((3, 2, 3), dtype=np.float32)
    if used.size == 0:
        return features
    p1, p2 = img1[ssim_used], img2[ssim_used]
    blurred = _blur(np.concatenate([img1[used], img2[used], p1 * p1, p2 * p2, p1 * p2]))
    k, m = used.size, ssim_used.size
    mu1, mu2 = blurred[:k], blurred[k : 2 * k]
    if m:
        s11, s22, s12 = blurred[2 * k : 2 * k + m], blurred[2 * k + m : 2 * k + 2 * m], blurred[2 * k + 2 * m :]
        at = np.searchsorted(used, ssim_used)
        m1, m2 = mu1[at], mu2[at]
        num_m = 1.0 - (m1 - m2) ** 2
        num_s = 2.0 * (s12 - m1 * m2) + _C2
        denom_s = (s11 - m1 * m1) + (s22 - m2 * m2) + _C2
        features[ssim_used, :, 0] = np.stack(_pool(np.maximum(1.0 - num_m * num_s / denom_s, 0.0)), axis=-1)
    ratio = (1.0 + np.abs(img2[used] - mu2)) / (1.0 + np.abs(img1[used] - mu1)) - 1.0
    features[used, :, 1] = np.stack(_pool(np.maximum(ratio, 0.0)), axis=-1)
    features[used, :, 2] = np.stack(_pool(np.maximum(-ratio, 0.0)), axis=-1)
    return features


def _num_scales(width: int, height: int) -> int:
    """How many scales the loop below gets to before a side drops under 8 pixels."""
    count = 0
    while count < _NUM_SCALES and min(width, height) >= 8:
        count += 1
        width, height = (width + 1) // 2, (height + 1) // 2
    return count


def _score_linear(linear1: Planes, linear2: Planes) -> float:
    num_scales = _num_scales(linear1.shape[1], linear1.shape[2])
    if not num_scales:
        return 100.0
    # [channel, scale, norm, feature] is the weights' order; with fewer scales the reference uses the first ones.
    weights = _WEIGHTS[: 18 * num_scales].reshape(3, num_scales, 2, 3)
    scales: list[Planes] = []
    for index in range(num_scales):
        scales.append(_scale_features(_xyb(linear1), _xyb(linear2), weights[:, index]))
        if index < num_scales - 1:
            linear1, linear2 = _downsample(linear1), _downsample(linear2)
    total = float(np.sum(weights * np.abs(np.stack(scales, axis=1)))) * 0.9562382616834844
    total = 2.326765642916932 * total - 0.020884521182843837 * total**2 + 6.248496625763138e-05 * total**3
    return 100.0 - 10.0 * total**0.6276336467831387 if total > 0 else 100.0
