"""Weight files of other frameworks, read without those frameworks: PaddlePaddle ``.pdparams``,
TensorFlow V2 checkpoint bundles and MindSpore ``.ckpt``."""

from .mindspore import is_mindspore_ckpt, read_mindspore_ckpt
from .paddle import is_pdparams, read_pdparams
from .tf_bundle import bundle_prefix, read_tf_bundle

__all__ = [
    "bundle_prefix",
    "is_mindspore_ckpt",
    "is_pdparams",
    "read_mindspore_ckpt",
    "read_pdparams",
    "read_tf_bundle",
]
