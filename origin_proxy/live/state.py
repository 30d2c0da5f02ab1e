"""Publishing point state machine as one transition table (h11 `_state.py` style). Pure.

idle -> starting (a header arrived) -> started (its first fragment) -> stopping (every stream ended with an
`mfra`/`lmsg`) -> stopped (archives finished). A header pushed to a stopped point starts a new event (starting).
"""

from __future__ import annotations

from enum import Enum

from ..errors import Conflict


class PointState(Enum):
    IDLE = "idle"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"


class PointEvent(Enum):
    HEADER = "header"
    FRAGMENT = "fragment"
    ALL_ENDED = "all_ended"
    ARCHIVED = "archived"


S, E = PointState, PointEvent
TRANSITIONS: dict[tuple[PointState, PointEvent], PointState] = {
    (S.IDLE, E.HEADER): S.STARTING,
    (S.STARTING, E.HEADER): S.STARTING,
    (S.STARTING, E.FRAGMENT): S.STARTED,
    (S.STARTED, E.HEADER): S.STARTED,
    (S.STARTED, E.FRAGMENT): S.STARTED,
    (S.STARTING, E.ALL_ENDED): S.STOPPING,
    (S.STARTED, E.ALL_ENDED): S.STOPPING,
    (S.STOPPING, E.ARCHIVED): S.STOPPED,
    (S.STOPPED, E.HEADER): S.STARTING,
}


def next_state(state: PointState, event: PointEvent) -> PointState:
    """The state after `event`. Raises Conflict (409) for a transition the table does not have."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise Conflict(f"publishing point is {state.value}: {event.value} not accepted") from None
