"""``GET /cohorts``: a cohort retention table (docs/contract/outputs.md), computed on the whole cluster."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.errors import PeriodError
from core.periods import to_us
from core.slices import CalendarSettings
from metrics.cohort_grid import KINDS, UNITS
from metrics.cohorts import CohortQuery, cohorts_plan
from metrics.exceptions import Unavailable
from metrics.segments import Segmenter
from streams.cluster.coordinator import Cluster


def query_of(params: Any, segmenter: Segmenter) -> tuple[CohortQuery, int | None]:
    """The table a request asks for, and its ``as_of`` instant; :class:`PeriodError` names a bad parameter."""
    by = params.get("by", "month")
    first = params.get("from")
    if not first:
        raise PeriodError(f"missing ?from=; the first cohort, e.g. {UNITS.get(by, UNITS['month'])}")
    segment = params.get("segment", "all")
    if not segment.startswith("abc:") and not segmenter.is_valid(segment):  # abc: refused with its reason
        raise PeriodError(f"segment {segment!r} is not one of {', '.join(segmenter.all_keys())}")
    query = CohortQuery(by, first, params.get("to") or None, segment, params.get("kind", "customers"))
    query.check()
    as_of = params.get("as_of")
    if not as_of:
        return query, None
    try:
        instant = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PeriodError(f"as_of {as_of!r}: {exc}; use RFC 3339, e.g. 2025-06-30T00:00:00Z") from exc
    if instant.tzinfo is None:
        raise PeriodError(f"as_of {as_of!r} needs an offset, e.g. 2025-06-30T00:00:00Z")
    return query, to_us(instant)


async def cohorts_response(web: Any, request: Any, cluster: Cluster, segmenter: Segmenter,
                           calendar: CalendarSettings) -> Any:
    """``GET /cohorts?by=month&from=2025-01&to=2025-12&segment=S&kind=customers|revenue[&as_of=T]``."""
    try:
        query, as_of = query_of(request.query, segmenter)
        answer = await cluster(cohorts_plan(query, calendar.tz, as_of))
    except PeriodError as exc:
        return web.json({"error": str(exc), "allowed": {"by": list(UNITS), "kind": list(KINDS)}}, status=400)
    except Unavailable as exc:  # exact or nothing: a rebalance, a worker restoring or away
        return web.json({"error": f"the cluster cannot answer now: {exc}"}, status=503)
    answer["timezone"] = calendar.timezone
    return web.json(answer)
