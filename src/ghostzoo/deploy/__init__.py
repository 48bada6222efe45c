"""Turning a trained model into its inference form: re-parameterization and BatchNorm folding,
export to ONNX / OpenVINO / TorchScript / torch.export with a parity check, and runtimes that run
those files as models."""

from .export import ExportError, ExportReport, dynamic_shape_ops, export_model
from .reparameterize import fold_batchnorms, reparameterize
from .runtime import load_exported

__all__ = [
    "fold_batchnorms",
    "reparameterize",
    "export_model",
    "ExportReport",
    "ExportError",
    "dynamic_shape_ops",
    "load_exported",
]
