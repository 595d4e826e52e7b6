"""One module per stage; importing this package registers them in run order."""

from bench.stages import import_, refit  # noqa: F401  (registration)

ORDER = ("import", "refit")  # later: "callbacks", "page_load", "load"
