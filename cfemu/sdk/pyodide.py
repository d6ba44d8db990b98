"""`pyodide`: only the `ffi` submodule exists in cfemu."""

from . import pyodide_ffi as ffi

__cfemu__ = True
__path__: list[str] = []
__all__ = ["ffi"]
