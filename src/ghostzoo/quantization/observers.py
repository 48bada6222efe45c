"""Calibration observers: what range of an activation tensor its uint8 grid should cover.

An observer watches the float values a tensor takes over the calibration images and turns them
into a range ``[lo, hi]`` (always containing 0, so that zero is exact on the grid). Three rules:

* ``minmax``: the smallest and largest value seen. Nothing is clipped, but one outlier can stretch
  the grid so much that the bulk of the values fall on a few levels.
* ``percentile``: the ``percentile``-th (default 99.99) and ``100 - percentile``-th percentiles of
  every value seen, from a histogram; clips the rare outliers.
* ``mse``: the clipping range that minimises the expected squared quantization error (rounding
  inside the range plus clipping outside it) over the same histogram.

These are written here rather than taken from ``torch.ao.quantization``, which torch itself
declares deprecated and scheduled for removal; the histogram is kept exact under a growing range by
only ever doubling it, so that old bins merge pairwise into new ones.
"""

from __future__ import annotations

from typing import Dict, Tuple, Type

import torch

from ..errors import GhostzooError

QMIN, QMAX = 0, 255  # activations: uint8, asymmetric, per tensor


class Observer:
    """Running statistics of one tensor; :meth:`range` gives the calibrated ``(lo, hi)``."""

    def __init__(self) -> None:
        self.min = float("inf")
        self.max = float("-inf")

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach()
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    @property
    def seen(self) -> bool:
        return self.min <= self.max

    def range(self) -> Tuple[float, float]:
        if not self.seen:
            raise GhostzooError("an activation was never observed: calibrate with at least one batch")
        return min(self.min, 0.0), max(self.max, 0.0)


class MinMaxObserver(Observer):
    """The full observed range."""


class HistogramObserver(Observer):
    """A histogram of every observed value over ``[-R, R]``, ``R`` doubling as values grow."""

    bins = 8192  # over [-R, R]; half of them for each sign

    def __init__(self) -> None:
        super().__init__()
        self.radius = 0.0
        self.hist = torch.zeros(self.bins, dtype=torch.float64)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        super().update(x)
        x = x.detach().flatten().float()
        peak = max(abs(self.min), abs(self.max))
        if peak == 0.0:
            self.hist[self.bins // 2] += x.numel()
            return
        if self.radius == 0.0:
            self.radius = peak
        while peak > self.radius:  # double the range: bins (2j, 2j+1) merge into the middle half
            merged = self.hist.view(-1, 2).sum(1)
            self.hist = torch.zeros_like(self.hist)
            self.hist[self.bins // 4 : 3 * self.bins // 4] = merged
            self.radius *= 2.0
        self.hist += torch.histc(x, self.bins, -self.radius, self.radius).double()

    def _centers(self) -> torch.Tensor:
        width = 2 * self.radius / self.bins
        return -self.radius + width * (torch.arange(self.bins, dtype=torch.float64) + 0.5)


class PercentileObserver(HistogramObserver):
    """Clip the outer ``100 - percentile`` percent of the values on each side."""

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        if not 50.0 < percentile <= 100.0:
            raise GhostzooError(f"percentile must be in (50, 100], not {percentile}")
        self.percentile = percentile

    def range(self) -> Tuple[float, float]:
        lo, hi = super().range()
        if self.radius == 0.0:
            return lo, hi
        cdf = self.hist.cumsum(0) / self.hist.sum()
        q = self.percentile / 100.0
        edges = torch.linspace(-self.radius, self.radius, self.bins + 1, dtype=torch.float64)
        upper = float(edges[int(torch.searchsorted(cdf, torch.tensor(q, dtype=torch.float64))) + 1])
        lower = float(edges[int(torch.searchsorted(cdf, torch.tensor(1.0 - q, dtype=torch.float64)))])
        return max(lo, min(lower, 0.0)), min(hi, max(upper, 0.0))


class MSEObserver(HistogramObserver):
    """The range, shrunk from the min-max one, whose uint8 grid has the least squared error."""

    steps = 200  # candidate ranges: the min-max range scaled by 1, 0.995, ..., 0.005

    def range(self) -> Tuple[float, float]:
        lo, hi = super().range()
        if self.radius == 0.0:
            return lo, hi
        x, count = self._centers(), self.hist
        keep = count > 0
        x, count = x[keep], count[keep]
        # every candidate at once (a row each): one pass over the histogram instead of 200
        f = 1.0 - torch.arange(self.steps, dtype=torch.float64) / self.steps
        a, b = lo * f, hi * f
        scale, zero_point = (t[:, None] for t in grid_params(a, b))
        q = (torch.round(x / scale) + zero_point).clamp(QMIN, QMAX)
        err = (((q - zero_point) * scale - x) ** 2 * count).sum(1)
        i = int(torch.argmin(err))  # the first of equal errors: the widest such range
        return float(a[i]), float(b[i])


OBSERVERS: Dict[str, Type[Observer]] = {
    "minmax": MinMaxObserver,
    "percentile": PercentileObserver,
    "mse": MSEObserver,
}


def create_observer(name: str) -> Observer:
    try:
        return OBSERVERS[name]()
    except KeyError:
        raise GhostzooError(f"unknown observer {name!r}; choose from {', '.join(OBSERVERS)}") from None


def grid_params(lo: torch.Tensor, hi: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(scale, zero_point)`` of each range ``[lo[i], hi[i]]`` (float64 tensors; each range must
    contain 0). A tensor that is always zero is exact at any scale: it gets ``(1, 0)``."""
    scale = (hi - lo) / (QMAX - QMIN)
    degenerate = scale <= 0.0
    scale = torch.where(degenerate, torch.ones_like(scale), scale)
    zero_point = torch.where(degenerate, torch.zeros_like(lo), torch.round(QMIN - lo / scale).clamp(QMIN, QMAX))
    return scale, zero_point


def qparams(lo: float, hi: float) -> Tuple[float, int]:
    """uint8 ``(scale, zero_point)`` of the range ``[lo, hi]`` (which must contain 0)."""
    scale, zero_point = grid_params(*torch.tensor([[lo], [hi]], dtype=torch.float64))
    return float(scale[0]), int(zero_point[0])
