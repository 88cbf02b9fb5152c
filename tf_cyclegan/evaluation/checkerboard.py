"""How strongly an image carries the grid that stride-2 upsamplings imprint.

A stride-2 transposed convolution whose kernel size is not a multiple of 2 covers even and
odd output pixels with different numbers of taps (Odena et al. 2016), so a generator built
from two of them can print a pattern that repeats every 2 and every 4 pixels: the
"checkerboard". In an image's power spectrum such a pattern is a spike at the frequencies of
period 2 and 4 (index H/2, H/4 and 3H/4 along each axis), where a natural image's spectrum is
smooth. The score is the power at each of those 15 frequencies (the zero frequency excluded)
over the mean power of its neighbouring frequencies, averaged over the frequencies and the
images: about 1 or below for natural images, far above for a visible grid.

Two details keep natural content from counting as a grid:
- the image's periodic component (Moisan, "Periodic plus smooth image decomposition", 2011)
  is analysed, so the jump between opposite borders that an FFT assumes away does not lay a
  bright cross over the spectrum's axes;
- the neighbours are the two frequencies on either side along a line through the frequency
  (horizontal, vertical or diagonal), taking the line where they are strongest: a straight
  edge puts its power on a line through the spectrum's centre, which a grid's isolated spike
  does not continue.
"""

import numpy as np

# The four directions of the lines of neighbours, and how far along each they are taken.
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))
_REACH = (1, 2)


def periodic_component(image):
    """The periodic part of a (H, W) array (Moisan 2011): the image minus the smooth image
    whose borders match the jumps between the image's opposite borders."""
    u = np.asarray(image, np.float64)
    height, width = u.shape
    v = np.zeros_like(u)
    v[0, :] += u[-1, :] - u[0, :]
    v[-1, :] += u[0, :] - u[-1, :]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    q = np.cos(2 * np.pi * np.arange(height) / height)[:, None]
    r = np.cos(2 * np.pi * np.arange(width) / width)[None, :]
    denominator = 2 * q + 2 * r - 4
    denominator[0, 0] = 1.0
    smooth = np.fft.fft2(v) / denominator
    smooth[0, 0] = 0.0
    return u - np.real(np.fft.ifft2(smooth))


def grid_frequencies(height, width):
    """The (row, column) spectrum indices of period 2 and 4 along each axis, without (0, 0)."""
    rows = sorted({0, height // 4, height // 2, 3 * height // 4})
    cols = sorted({0, width // 4, width // 2, 3 * width // 4})
    return [(y, x) for y in rows for x in cols if (y, x) != (0, 0)]


def spike_ratios(image):
    """The power at each `grid_frequencies` entry of a (H, W, C) image over its neighbours'
    (channels' power summed). H and W must be multiples of 4."""
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        image = image[..., None]
    height, width = image.shape[:2]
    if image.ndim != 3 or height % 4 or width % 4 or height < 8 or width < 8:
        raise ValueError(f"Need a (H, W, C) image with H and W multiples of 4, at least 8. "
                         f"Received shape {image.shape}")
    power = np.zeros((height, width))
    for channel in np.moveaxis(image, -1, 0):
        power += np.abs(np.fft.fft2(periodic_component(channel - channel.mean()))) ** 2
    floor = 1e-12 * power.sum() + 1e-30  # a flat image: every ratio 0, not 0/0
    ratios = []
    for y, x in grid_frequencies(height, width):
        lines = []
        for dy, dx in _DIRECTIONS:
            around = [power[(y + s * k * dy) % height, (x + s * k * dx) % width] for k in _REACH for s in (1, -1)]
            lines.append(np.mean(around))
        ratios.append(power[y, x] / (max(lines) + floor))
    return np.asarray(ratios)


def checkerboard_score(images):
    """Mean `spike_ratios` over the period-2 and period-4 frequencies and over `images`
    ((H, W, C) or a batch (N, H, W, C), any value range): about 1 or below without a grid."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    return float(np.mean([spike_ratios(image) for image in images]))
