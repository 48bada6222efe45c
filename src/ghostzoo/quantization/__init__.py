"""int8 quantization: post-training (PTQ), then quantization-aware fine-tuning (QAT), into an ONNX file.

The scheme is the one of the MindSpore GhostNet int8 model: weights int8 in [-128, 127], symmetric,
one scale per output channel; activations uint8 in [0, 255], asymmetric, one scale and zero point
per tensor. The file is ONNX in QDQ form with ghostzoo metadata: ONNX Runtime runs it on its int8
kernels (QLinearConv etc., VNNI on x86), and ``ghostzoo validate`` / ``predict`` / ``benchmark``
take it through ``--checkpoint model_int8.onnx``.

    from ghostzoo.quantization import quantize_to_onnx
    quantize_to_onnx(model, calibration_images, "model_int8.onnx", observer="percentile")

One fake-quantized PyTorch model (:func:`prepare`) is the source of truth for both PTQ
(:func:`calibrate`) and QAT (:func:`finetune`, the project's training engine), and both end in the
same export (:func:`export_int8`).
"""

from .api import calibration_batches, check_output, export_int8, quantize_to_onnx
from .backend import int8_runtime
from .observers import OBSERVERS
from .prepare import (
    SUPPORTED_FAMILIES,
    QuantSpec,
    UnsupportedModelError,
    calibrate,
    check_family,
    check_supported,
    deploy_form,
    prepare,
)
from .qat import finetune, qat_learning_rate
from .workflow import Agreement, QuantizeReport, compare, quantize, random_subset

__all__ = [
    "int8_runtime",
    "quantize_to_onnx",
    "quantize",
    "prepare",
    "calibrate",
    "finetune",
    "export_int8",
    "compare",
    "calibration_batches",
    "deploy_form",
    "check_supported",
    "check_family",
    "check_output",
    "qat_learning_rate",
    "random_subset",
    "QuantSpec",
    "QuantizeReport",
    "Agreement",
    "UnsupportedModelError",
    "SUPPORTED_FAMILIES",
    "OBSERVERS",
]
