"""ONNX interchange: ``export`` a shendu model, ``import_model`` an ONNX one, and an ONNX
backend (``shendu.onnx.backend``) that runs ONNX's own conformance tests.

Needs the ``onnx`` package (``pip install 'shendu[onnx]'``), imported on first use.
"""
# (the function shadows its module's name, as torch.onnx.export does)
from .export import export
from .importer import OnnxModule, UnsupportedOpError, import_model, supported_ops

__all__ = ["OnnxModule", "UnsupportedOpError", "import_model", "supported_ops", "export"]
