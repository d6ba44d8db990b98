"""The SDK-compatible surface that worker code imports as `workers`, `js` and `pyodide.ffi`."""
