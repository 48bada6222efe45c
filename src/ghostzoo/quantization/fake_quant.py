"""Fake quantization: float modules that compute exactly what the int8 runtime will.

Weights are int8, symmetric (zero point 0), one scale per output channel: ``scale = max|w| / 127``,
so every weight lands in ``[-127, 127]`` (inside int8's ``[-128, 127]``) and a depthwise filter with
small weights keeps its own fine grid instead of sharing the one of its largest neighbour, which
is what makes GhostNet's depthwise layers survive int8. Activations are uint8, asymmetric, one
``(scale, zero_point)`` per tensor, calibrated by an observer.

Both use torch's core fake-quantize operators, which (a) are differentiable with a
straight-through gradient, so the same model is trained for QAT, and (b) export to ONNX
``QuantizeLinear`` / ``DequantizeLinear`` pairs, which ONNX Runtime fuses into int8 kernels.
Those operators have no symbolic (fake tensor) kernel, so while ``torch.export`` traces the model
(the ``dynamo`` ONNX exporter) they are spelled as the ``quantized_decomposed`` quantize /
dequantize pair, which computes the same values and exports to the same ONNX pair.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Tuple

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401 -- registers torch.ops.quantized_decomposed
import torch.nn as nn
import torch.nn.functional as F

from .observers import QMAX, QMIN, Observer, qparams

_QD = torch.ops.quantized_decomposed
WEIGHT_QMIN, WEIGHT_QMAX = -128, 127
WEIGHT_LEVELS = 127  # symmetric: max|w| maps to +-127


def weight_scales(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 scales of ``weight`` (channels on dim 0)."""
    amax = weight.detach().abs().flatten(1).amax(1).float()
    return torch.where(amax > 0, amax / WEIGHT_LEVELS, torch.ones_like(amax))


class ActivationFakeQuant(nn.Module):
    """uint8 per-tensor fake quantization of one activation tensor.

    ``observing``: the input passes unchanged and the observer records it (calibration);
    :meth:`freeze` turns the observed range into ``scale`` / ``zero_point`` (buffers, saved with the
    model) and switches to quantizing.
    """

    def __init__(self, observer: Observer) -> None:
        super().__init__()
        self.observer = observer
        self.observing = True
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))
        self.pinned: Optional[Tuple[float, int]] = None  # (scale, zero point) as numbers, for export

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.observer.update(x)
            return x
        if torch.compiler.is_exporting():
            if self.pinned is None:
                raise RuntimeError("export a fake-quantized model inside pinned_qparams(model)")
            q = _QD.quantize_per_tensor(x, *self.pinned, QMIN, QMAX, torch.uint8)
            return _QD.dequantize_per_tensor(q, *self.pinned, QMIN, QMAX, torch.uint8)
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, QMIN, QMAX)

    @torch.no_grad()
    def freeze(self) -> None:
        scale, zero_point = qparams(*self.observer.range())
        self.scale.fill_(scale)
        self.zero_point.fill_(zero_point)
        self.observing = False

    def extra_repr(self) -> str:
        state = "observing" if self.observing else f"scale={float(self.scale):.4g}, zero_point={int(self.zero_point)}"
        return f"{type(self.observer).__name__}, {state}"


@contextlib.contextmanager
def pinned_qparams(model: nn.Module) -> Iterator[None]:
    """Meanwhile, each activation quantizer also holds its scale and zero point as Python numbers.

    ``torch.export`` turns buffers into symbolic tensors, while the quantize operator the ONNX
    exporter translates wants its parameters fixed: this is how they reach the graph as constants.
    """
    quantizers = [m for m in model.modules() if isinstance(m, ActivationFakeQuant)]
    for m in quantizers:
        m.pinned = (float(m.scale), int(m.zero_point))
    try:
        yield
    finally:
        for m in quantizers:
            m.pinned = None


class WeightFakeQuant:
    """Mixin for Conv2d / Linear: the weight is fake-quantized on every forward.

    The scales follow the weights (they change during QAT) and are kept in the ``weight_scale``
    buffer; while an ONNX export traces the module the buffer is used as it is, so the exported
    graph holds constants that the int8 file turns into int8 initializers.
    """

    weight: nn.Parameter
    weight_scale: torch.Tensor

    def _init_weight_quant(self) -> None:
        self.register_buffer("weight_scale", weight_scales(self.weight))

    def quantized_weight(self) -> torch.Tensor:
        zero_point = torch.zeros(self.weight_scale.shape, dtype=torch.int32, device=self.weight.device)
        args = (self.weight_scale, zero_point, 0, WEIGHT_QMIN, WEIGHT_QMAX)
        if torch.compiler.is_exporting():
            q = _QD.quantize_per_channel(self.weight, *args, torch.int8)
            return _QD.dequantize_per_channel(q, *args, torch.int8)
        if not torch.onnx.is_in_onnx_export():
            with torch.no_grad():
                self.weight_scale.copy_(weight_scales(self.weight))
        return torch.fake_quantize_per_channel_affine(self.weight, *args)


class QuantConv2d(WeightFakeQuant, nn.Conv2d):
    """``nn.Conv2d`` with int8 per-channel fake-quantized weights."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d) -> "QuantConv2d":
        q = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            conv.padding_mode,
            device="meta",
        )
        q.weight, q.bias = conv.weight, conv.bias  # the same Parameters: QAT updates them
        q._init_weight_quant()
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class QuantLinear(WeightFakeQuant, nn.Linear):
    """``nn.Linear`` with int8 per-channel fake-quantized weights."""

    @classmethod
    def from_float(cls, linear: nn.Linear) -> "QuantLinear":
        q = cls(linear.in_features, linear.out_features, linear.bias is not None, device="meta")
        q.weight, q.bias = linear.weight, linear.bias
        q._init_weight_quant()
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


def quantize_module(module: nn.Module) -> Optional[nn.Module]:
    """The weight-quantized version of a plain Conv2d / Linear, None for anything else."""
    if type(module) is nn.Conv2d and module.padding_mode == "zeros":
        return QuantConv2d.from_float(module)
    if type(module) is nn.Linear:
        return QuantLinear.from_float(module)
    return None
