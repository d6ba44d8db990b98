"""`pyodide`: the `ffi` and `http` submodules exist in cfemu."""

from . import pyodide_ffi as ffi
from . import pyodide_http as http

__cfemu__ = True
__path__: list[str] = []
__all__ = ["ffi", "http"]
