"""cfemu: a local runtime for Cloudflare Workers written in Python.

Worker code imports the SDK surface (`workers`, `js`, `pyodide.ffi`), never `cfemu`; tests use
`cfemu.testing`; other programs may use the primitives directly (e.g. `cfemu.runtime.Runtime`).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
