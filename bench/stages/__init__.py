"""One module per stage; importing this package registers them in run order."""

from bench.stages import callbacks, import_, load, page_load, refit  # noqa: F401  (registration)

ORDER = ("import", "refit", "callbacks", "page_load", "load")
