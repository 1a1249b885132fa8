"""The API's paths, defined once: the version prefix, the storefront's click route and the at-risk list.

The routers register them (routes/events.py, routes/reads.py); the boundary admits API requests and checks
the click's media type by them (service/boundary.py); the lean path serves the click (service/click_path.py).
"""

from __future__ import annotations

from starlette.routing import compile_path
from starlette.types import Scope

from service.routes.convertors import ANY

API_PREFIX = "/v1"  # admission applies below it; probes and /metrics always answer
_API_PATHS = API_PREFIX + "/"

CLICK_METHOD = "POST"
# The documented click route, the one the lean path serves.
CLICK_ROUTE = "/sessions/{session_id}/events"
# Its hidden twin: an id with an encoded slash or a newline still reaches the handler, and gets the 422 that
# names path.session_id instead of a 404 (routes/events.py).
CLICK_ROUTE_ANY = "/sessions/{session_id:" + ANY + "}/events"
CLICK_PATH = API_PREFIX + CLICK_ROUTE
# Matches every path either click route takes: the twin's `any` covers the documented route's ids too.
_CLICK_PATHS = compile_path(API_PREFIX + CLICK_ROUTE_ANY)[0]

# Admin routes (reload, shadow) skip admission: an operator's reload must get through an overload, and
# they are rare and authenticated. Issue 22's reload bench saw a reload refused with 503 at 620/s.
ADMIN_ROUTE_PREFIX = "/admin"
_ADMIN_PATHS = API_PREFIX + ADMIN_ROUTE_PREFIX + "/"

AT_RISK_ROUTE = "/at-risk"
AT_RISK_PATH = API_PREFIX + AT_RISK_ROUTE


def is_api(path: str) -> bool:
    """A path below the API prefix, admin routes aside: admission counts it."""
    return path.startswith(_API_PATHS) and not path.startswith(_ADMIN_PATHS)


def is_click(scope: Scope) -> bool:
    """A request one of the click routes takes (the one route with a body)."""
    return scope.get("method") == CLICK_METHOD and _CLICK_PATHS.match(str(scope.get("path", ""))) is not None
