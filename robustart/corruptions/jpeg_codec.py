"""libjpeg's lossy steps in batched torch: a JPEG round trip on any device, equal to libjpeg's.

A baseline JPEG round trip loses information only in its arithmetic: colour conversion, chroma
subsampling, the integer DCT, quantisation, the inverse DCT, chroma upsampling and the colour
conversion back. Huffman coding in between is lossless, so the decoded pixels are a function of
those steps alone. This module computes them in torch, batched, on the images' device, with
the integer arithmetic of libjpeg-turbo as PIL and torchvision call it (``quality`` scaling of
the IJG tables with baseline clamping, 4:2:0 subsampling of colour images, the ``islow`` DCT,
libjpeg-turbo's reciprocal quantisation, "fancy" triangular upsampling, table-based colour
conversion). ``tests/test_jpeg_codec.py`` checks pixel equality with PIL's codec over qualities
1-100, colour and grey images, and sizes that are not multiples of the block size.

Each DCT pass of libjpeg is a butterfly of integer products and sums followed by a rounding
right shift. The butterfly is linear, so a pass is an 8 × 8 integer matrix (built here by
running the butterfly on the unit vectors in Python integers) applied in float64, which holds
every intermediate sum exactly (< 2**31), then ``floor((x + bias) / 2**shift)``, exactly as the
shift. The constants are the 13-bit fixed-point cosines of libjpeg's ``jfdctint.c`` and
``jidctint.c`` (``CONST_BITS = 13``, ``PASS1_BITS = 2``), and the 16-bit colour constants of
``jccolor.c`` and ``jdcolor.c`` (``SCALEBITS = 16``).

Out-of-range inverse DCT outputs are clamped to [0, 255], as libjpeg-turbo's SIMD code does (its
portable C code wraps values beyond ±384 through a mask first, a case that needs coefficients no
8-bit image produces at the qualities of the corruption tables).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: The IJG (JPEG standard Annex K) quantisation tables, natural (row-major) order.
LUMINANCE_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMINANCE_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)

CONST_BITS, PASS1_BITS = 13, 2  # libjpeg's islow DCT fixed point
SCALEBITS = 16  # libjpeg's colour conversion fixed point


def _fix(x: float, bits: int) -> int:
    """``x`` in fixed point with ``bits`` fraction bits, rounded (libjpeg's ``FIX``)."""
    return int(x * (1 << bits) + 0.5)


def quantization_tables(quality: int) -> tuple[Tensor, Tensor]:
    """Luminance and chrominance tables (8, 8) of ``quality`` as libjpeg scales them.

    ``jpeg_set_quality(quality, force_baseline=TRUE)``: scale 5000 / q below 50, else
    200 − 2q percent; entries ``(base · scale + 50) // 100`` clamped to [1, 255].

    Example:
        >>> luma, chroma = quantization_tables(50)  # quality 50 is the standard table
        >>> int(luma[0, 0]), int(chroma[7, 7]), int(quantization_tables(100)[0].max())
        (16, 99, 1)
    """
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality

    def scaled(table: tuple[tuple[int, ...], ...]) -> Tensor:
        values = [[min(max((v * scale + 50) // 100, 1), 255) for v in row] for row in table]
        return torch.tensor(values, dtype=torch.int64)

    return scaled(LUMINANCE_TABLE), scaled(CHROMINANCE_TABLE)


# ----------------------------------------------------------------------------- DCT matrices
def _fixed_cosines() -> dict[str, int]:
    """The 13-bit constants of libjpeg's islow DCTs."""
    values = {
        "c0298": 0.298631336,
        "c0390": 0.390180644,
        "c0541": 0.541196100,
        "c0765": 0.765366865,
        "c0899": 0.899976223,
        "c1175": 1.175875602,
        "c1501": 1.501321110,
        "c1847": 1.847759065,
        "c1961": 1.961570560,
        "c2053": 2.053119869,
        "c2562": 2.562915447,
        "c3072": 3.072711026,
    }
    return {name: _fix(value, CONST_BITS) for name, value in values.items()}


def _forward_butterfly(d: list[int], first_pass: bool) -> list[int]:
    """One pass of libjpeg's ``jpeg_fdct_islow`` on 8 samples, before the rounding shift
    (outputs 0 and 4 of the first pass already include their exact left shift)."""
    k = _fixed_cosines()
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    out = [0] * 8
    even = 1 << PASS1_BITS if first_pass else 1
    out[0], out[4] = (tmp10 + tmp11) * even, (tmp10 - tmp11) * even
    z1 = (tmp12 + tmp13) * k["c0541"]
    out[2] = z1 + tmp13 * k["c0765"]
    out[6] = z1 - tmp12 * k["c1847"]
    out[7], out[5], out[3], out[1] = _odd_part(tmp4, tmp5, tmp6, tmp7)
    return out


def _odd_part(a: int, b: int, c: int, d: int) -> tuple[int, int, int, int]:
    """The odd part shared by libjpeg's islow forward and inverse DCTs: from the differences
    (forward) or the odd coefficients 7, 5, 3, 1 (inverse)."""
    k = _fixed_cosines()
    z1, z2, z3, z4 = a + d, b + c, a + c, b + d
    z5 = (z3 + z4) * k["c1175"]
    z1, z2 = -z1 * k["c0899"], -z2 * k["c2562"]
    z3, z4 = -z3 * k["c1961"] + z5, -z4 * k["c0390"] + z5
    return (
        a * k["c0298"] + z1 + z3,
        b * k["c2053"] + z2 + z4,
        c * k["c3072"] + z2 + z3,
        d * k["c1501"] + z1 + z4,
    )


def _inverse_butterfly(c: list[int]) -> list[int]:
    """One pass of libjpeg's ``jpeg_idct_islow`` on 8 (dequantised) coefficients, before the
    rounding shift."""
    k = _fixed_cosines()
    z1 = (c[2] + c[6]) * k["c0541"]
    tmp2 = z1 - c[6] * k["c1847"]
    tmp3 = z1 + c[2] * k["c0765"]
    tmp0, tmp1 = (c[0] + c[4]) << CONST_BITS, (c[0] - c[4]) << CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    t0, t1, t2, t3 = _odd_part(c[7], c[5], c[3], c[1])
    return [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]


def _matrix(butterfly: Callable[[list[int]], list[int]]) -> list[list[int]]:
    """The integer matrix of a linear butterfly: column j is its output on unit vector j."""
    columns = [butterfly([int(i == j) for i in range(8)]) for j in range(8)]
    return [[columns[j][i] for j in range(8)] for i in range(8)]


class IntegerPass:
    """One libjpeg DCT pass: an integer matrix, then ``floor((x + bias) / 2**shift)`` per
    output (``bias = 2**(shift-1)``, none for ``shift = 0``).

    Attributes:
        matrix: (8, 8) float64 holding integers.
        bias: (8, 1) float64.
        scale: (8, 1) float64, ``2**-shift``.
    """

    def __init__(self, rows: list[list[int]], shifts: list[int]) -> None:
        self.matrix = torch.tensor(rows, dtype=torch.float64)
        self.bias = torch.tensor([[(1 << s) >> 1] for s in shifts], dtype=torch.float64)
        self.scale = torch.tensor([[2.0**-s] for s in shifts], dtype=torch.float64)

    def on_rows(self, blocks: Tensor) -> Tensor:
        """Apply to every row of blocks (..., 8, 8) (the pass runs along the last axis)."""
        m, b, s = (t.to(blocks.device) for t in (self.matrix, self.bias, self.scale))
        return torch.floor((blocks @ m.T + b.T) * s.T)

    def on_columns(self, blocks: Tensor) -> Tensor:
        """Apply to every column of blocks (..., 8, 8)."""
        m, b, s = (t.to(blocks.device) for t in (self.matrix, self.bias, self.scale))
        return torch.floor((m @ blocks + b) * s)


@functools.lru_cache(maxsize=1)
def dct_passes() -> tuple[IntegerPass, IntegerPass, IntegerPass, IntegerPass]:
    """libjpeg's islow passes: forward rows, forward columns, inverse columns, inverse rows.

    The inverse row pass includes the ``+3`` of the final descale (the DCT's factor 8).
    """
    descale1 = CONST_BITS - PASS1_BITS
    forward_rows = IntegerPass(
        _matrix(lambda d: _forward_butterfly(d, True)),
        [0 if k in (0, 4) else descale1 for k in range(8)],
    )
    forward_columns = IntegerPass(
        _matrix(lambda d: _forward_butterfly(d, False)),
        [PASS1_BITS if k in (0, 4) else CONST_BITS + PASS1_BITS for k in range(8)],
    )
    inverse = _matrix(_inverse_butterfly)
    inverse_columns = IntegerPass(inverse, [descale1] * 8)
    inverse_rows = IntegerPass(inverse, [CONST_BITS + PASS1_BITS + 3] * 8)
    return forward_rows, forward_columns, inverse_columns, inverse_rows


# ----------------------------------------------------------------------------- quantisation
def reciprocal_quantizer(table: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """libjpeg-turbo's reciprocal division by ``8 · table`` (its ``compute_reciprocal`` with
    16-bit DCT elements): ``|q| = ((|x| + correction) · reciprocal) >> shift``.

    Returns:
        ``(reciprocal, correction, 2**-shift)``, each (8, 8) float64.
    """
    reciprocal, correction, scale = [], [], []
    for divisor in (8 * table).flatten().tolist():
        if divisor == 1:  # cannot happen for divisors 8 · q; kept for the definition
            fq, c, r = 1, 0, 0
        else:
            r = 16 + divisor.bit_length() - 1
            fq, fr = divmod(1 << r, divisor)
            c = divisor // 2
            if fr == 0:
                fq, r = fq >> 1, r - 1
            elif fr <= divisor // 2:
                c += 1
            else:
                fq += 1
        reciprocal.append(fq)
        correction.append(c)
        scale.append(2.0**-r)
    return tuple(  # type: ignore[return-value]
        torch.tensor(v, dtype=torch.float64).view(8, 8) for v in (reciprocal, correction, scale)
    )


def quantize_dequantize(coefficients: Tensor, table: Tensor) -> Tensor:
    """Quantise forward-DCT blocks (..., 8, 8) (scaled by 8, as libjpeg's islow output) with
    ``table`` (8, 8) and multiply back: the dequantised coefficients the decoder sees."""
    reciprocal, correction, scale = (
        t.to(coefficients.device) for t in reciprocal_quantizer(table.cpu())
    )
    magnitude = torch.floor((coefficients.abs() + correction) * reciprocal * scale)
    return torch.copysign(magnitude, coefficients) * table.to(coefficients)


# ----------------------------------------------------------------------------- colour
def _colour_matrices() -> tuple[Tensor, Tensor, Tensor]:
    """libjpeg's 16-bit colour constants: RGB → YCbCr rows with their rounding offsets, and
    (Cb − 128, Cr − 128) → the R, G, B corrections."""
    f = functools.partial(_fix, bits=SCALEBITS)
    half, offset = 1 << (SCALEBITS - 1), 128 << SCALEBITS
    forward = [
        [f(0.29900), f(0.58700), f(0.11400)],
        [-f(0.16874), -f(0.33126), f(0.5)],
        [f(0.5), -f(0.41869), -f(0.08131)],
    ]
    forward_offset = [half, offset + half - 1, offset + half - 1]  # Cb, Cr: 0.5 − epsilon
    inverse = [[0, f(1.40200)], [-f(0.34414), -f(0.71414)], [f(1.77200), 0]]
    return (
        torch.tensor(forward, dtype=torch.float64),
        torch.tensor(forward_offset, dtype=torch.float64).view(3, 1),
        torch.tensor(inverse, dtype=torch.float64),
    )


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """libjpeg's ``rgb_ycc_convert`` on integer-valued float64 (N, 3, H, W) in [0, 255]."""
    forward, offset, _ = (t.to(rgb.device) for t in _colour_matrices())
    n, _, h, w = rgb.shape
    ycc = torch.floor((forward @ rgb.reshape(n, 3, h * w) + offset) * 2.0**-SCALEBITS)
    return ycc.view(n, 3, h, w)


def ycbcr_to_rgb(ycc: Tensor) -> Tensor:
    """libjpeg's ``ycc_rgb_convert`` (its tables, then the range limit) on integer-valued
    float64 (N, 3, H, W)."""
    _, _, inverse = (t.to(ycc.device) for t in _colour_matrices())
    n, _, h, w = ycc.shape
    chroma = ycc[:, 1:].reshape(n, 2, h * w) - 128
    half = 1 << (SCALEBITS - 1)
    corrections = torch.floor((inverse @ chroma + half) * 2.0**-SCALEBITS).view(n, 3, h, w)
    return corrections.add_(ycc[:, :1]).clamp_(0, 255)


# ----------------------------------------------------------------------------- sampling
def _pad_to(plane: Tensor, height: int, width: int) -> Tensor:
    """Replicate the last row and column of planes (N, H, W) up to (height, width)."""
    pad_h, pad_w = height - plane.shape[-2], width - plane.shape[-1]
    if pad_h == pad_w == 0:
        return plane
    return F.pad(plane.unsqueeze(1), (0, pad_w, 0, pad_h), mode="replicate").squeeze(1)


def _ceil(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def downsample_h2v2(plane: Tensor) -> Tensor:
    """libjpeg's 2 × 2 chroma averaging (``h2v2_downsample``) of full-resolution planes
    (N, H, W), H and W even: ``(a + b + c + d + bias) >> 2`` with bias 1, 2, 1, 2, ... along
    each row."""
    w = plane.shape[-1]
    sums = F.avg_pool2d(plane.unsqueeze(1), 2).squeeze(1) * 4  # exact: integers / 4 · 4
    bias = torch.ones(w // 2, dtype=plane.dtype, device=plane.device)
    bias[1::2] = 2
    return torch.floor((sums + bias) * 0.25)


def upsample_h2v2_fancy(plane: Tensor) -> Tensor:
    """libjpeg's triangular ("fancy") 2 × 2 chroma upsampling (``h2v2_fancy_upsample``) of
    planes (N, h, w): 3/4 of the nearer and 1/4 of the farther sample in each direction, edges
    replicated, rounding biases 8 and 7. Returns (N, 2h, 2w)."""
    padded = F.pad(plane.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    centre = 3 * padded[:, 1:-1, :]
    above, below = centre + padded[:, :-2, :], centre + padded[:, 2:, :]
    rows = torch.stack([above, below], dim=2).flatten(1, 2)  # (N, 2h, w + 2) column sums
    middle = 3 * rows[:, :, 1:-1]
    left = torch.floor((middle + rows[:, :, :-2] + 8) * 0.0625)
    right = torch.floor((middle + rows[:, :, 2:] + 7) * 0.0625)
    return torch.stack([left, right], dim=3).flatten(2, 3)


# ----------------------------------------------------------------------------- round trip
def _code_plane(plane: Tensor, table: Tensor) -> Tensor:
    """Encode and decode planes (N, H, W), H and W multiples of 8, integer-valued float64 in
    [0, 255], with quantisation ``table``: returns the inverse DCT's samples in [0, 255]."""
    forward_rows, forward_columns, inverse_columns, inverse_rows = dct_passes()
    n, h, w = plane.shape
    blocks = (plane - 128).view(n, h // 8, 8, w // 8, 8).transpose(2, 3)
    coefficients = forward_columns.on_columns(forward_rows.on_rows(blocks))
    dequantised = quantize_dequantize(coefficients, table)
    samples = inverse_rows.on_rows(inverse_columns.on_columns(dequantised))
    samples = (samples + 128).clamp_(0, 255)
    return samples.transpose(2, 3).reshape(n, h, w)


def jpeg_roundtrip_torch(pixels: Tensor, quality: int) -> Tensor:
    """Baseline JPEG round trip of 8-bit images at ``quality``, computed in torch.

    Equal to encoding with libjpeg(-turbo) as PIL's ``save(..., "JPEG", quality=quality)``
    does (4:2:0 for colour images) and decoding with its defaults (islow IDCT, fancy
    upsampling).

    Args:
        pixels: (N, C, H, W) with C 1 (grey) or 3 (RGB), integer values in [0, 255], any
            dtype, on any device.
        quality: libjpeg quality, 1-100.

    Returns:
        (N, C, H, W) float64, the decoded integer values in [0, 255].

    Example:
        >>> flat = torch.full((1, 3, 16, 16), 200.0)
        >>> jpeg_roundtrip_torch(flat, 75).unique().tolist()  # a flat colour survives
        [200.0]
    """
    n, channels, height, width = pixels.shape
    if channels not in (1, 3):
        raise ValueError(f"JPEG codes 1 or 3 channels, got {channels}")
    luma_table, chroma_table = (t.to(pixels.device) for t in quantization_tables(quality))
    pixels = pixels.to(torch.float64)
    if channels == 1:
        plane = _pad_to(pixels[:, 0], _ceil(height, 8), _ceil(width, 8))
        return _code_plane(plane, luma_table)[:, None, :height, :width]
    ycc = rgb_to_ycbcr(pixels)
    luma = _pad_to(ycc[:, 0], _ceil(height, 8), _ceil(width, 8))
    luma = _code_plane(luma, luma_table)[:, :height, :width]
    # chroma: full resolution replicated to an even height and to twice the padded chroma
    # width, averaged 2 × 2, then the averaged rows replicated to a multiple of 8
    chroma_height, chroma_width = -(-height // 2), -(-width // 2)
    full = _pad_to(ycc[:, 1:].flatten(0, 1), 2 * chroma_height, 2 * _ceil(chroma_width, 8))
    small = _pad_to(downsample_h2v2(full), _ceil(chroma_height, 8), _ceil(chroma_width, 8))
    small = _code_plane(small, chroma_table)[:, :chroma_height, :chroma_width]
    if chroma_width > 2:
        chroma = upsample_h2v2_fancy(small)
    else:  # libjpeg upsamples chroma 2 samples wide or less by replication
        chroma = small.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    chroma = chroma[:, :height, :width].reshape(n, 2, height, width)
    return ycbcr_to_rgb(torch.cat([luma[:, None], chroma], dim=1))
