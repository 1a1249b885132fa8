"""API-key scopes (docs/architecture.md §7): the one list settings validate against and routes require.

`admin` implies every scope.
"""

from __future__ import annotations

EVENTS_WRITE = "events:write"  # the storefront: POST a click
RISK_READ = "risk:read"  # the coupon engine: risk, at-risk list, explain
ADMIN = "admin"  # erasure; implies every scope
SCOPES: tuple[str, ...] = (EVENTS_WRITE, RISK_READ, ADMIN)
