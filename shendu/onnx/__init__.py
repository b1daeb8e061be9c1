"""ONNX interchange: ``export`` a shendu model, ``import_model`` an ONNX one, and an ONNX
backend (``shendu.onnx.backend``) that runs ONNX's own conformance tests.

Needs the ``onnx`` package (``pip install 'shendu[onnx]'``); it is imported on first use.
"""
from .importer import OnnxModule, UnsupportedOpError, import_model, supported_ops

__all__ = ["OnnxModule", "UnsupportedOpError", "import_model", "supported_ops", "export"]


def __getattr__(name):
    if name == "export":
        from .export import export

        return export
    raise AttributeError(f"module 'shendu.onnx' has no attribute {name!r}")
