"""Open311 GeoReport v2 (``/open311/v2``): an adapter over the work-order domain.

``router`` holds the endpoints, ``params`` reads Open311 parameters, ``render`` writes XML and
JSON. Details and what is not supported: docs/open311.md.
"""

from cityweave.api.open311.router import router

__all__ = ["router"]
