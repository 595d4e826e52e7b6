"""One module per stage; importing this package registers them in run order."""

from bench.stages import (  # noqa: F401  (registration)
    callbacks,
    campaigns,
    import_,
    load,
    page_load,
    refit,
)

ORDER = ("import", "refit", "callbacks", "page_load", "load", "campaigns")
# Run only when asked for (`--only ...`): the Spark engine needs `.[spark]`, Java and the driver.
OPTIONAL = ("refit_spark",)
