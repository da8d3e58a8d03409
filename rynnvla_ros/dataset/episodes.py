"""Episode boundaries inside a bag, from an episode topic (``topics.EPISODE`` by default).

The recorder publishes one of these message types; the converter accepts all of them:

``std_msgs/String``
    ``"start"`` opens an episode at the message time, ``"start:<task text>"`` opens one with that task,
    ``"stop"`` closes it (kept), ``"discard"`` closes it and drops it. A ``start`` while an episode is open
    closes the open one first. Case and surrounding spaces are ignored; other text is reported and ignored.
``std_msgs/Bool``
    ``True`` opens an episode (if none is open), ``False`` closes it.
``std_msgs/Int8..Int64`` / ``UInt8..UInt64``
    The value is the episode number: a value ``>= 0`` different from the open episode's number opens a new one
    (closing the open one); the same value again changes nothing (periodic re-publication is fine); a negative
    value closes the open episode.

An episode still open at the end of the bag ends with the bag. Frames outside every episode are dropped (reason
``outside_episode``). Boundaries use the message receive (bag) time: these messages have no header.
"""

from __future__ import annotations

from dataclasses import dataclass

INT_TYPES = tuple(
    f"std_msgs/msg/{k}" for k in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
)
STRING = "std_msgs/msg/String"
BOOL = "std_msgs/msg/Bool"
EPISODE_TYPES = (STRING, BOOL, *INT_TYPES)


@dataclass
class Segment:
    """One episode of a bag: frames with ``start_ns <= t < end_ns``."""

    start_ns: int
    end_ns: int
    label: str
    task: str | None = None
    discarded: bool = False


def parse_command(msg: object, msgtype: str) -> tuple[str, str | int | None]:
    """(``start``|``on``|``stop``|``discard``|``number``|``unknown``, argument) of one episode message."""
    if msgtype == STRING:
        text = str(msg.data).strip()
        head, _, rest = text.partition(":")
        command = head.strip().lower()
        if command == "start":
            return "start", rest.strip() or None
        if command in ("stop", "discard") and not rest.strip():
            return command, None
        return "unknown", text
    if msgtype == BOOL:
        return ("on", None) if bool(msg.data) else ("stop", None)
    if msgtype in INT_TYPES:
        return "number", int(msg.data)
    raise ValueError(f"{msgtype} is not an episode message type; use one of {', '.join(EPISODE_TYPES)}")


def segments(events: list[tuple[int, str, str | int | None]], end_ns: int) -> tuple[list[Segment], list[str]]:
    """Episodes from time-ordered ``(time_ns, command, argument)`` events; also returns warnings."""
    out: list[Segment] = []
    warnings: list[str] = []
    current: Segment | None = None
    number: int | None = None

    def close(t: int, discard: bool = False) -> None:
        nonlocal current, number
        if current is not None:
            current.end_ns, current.discarded = t, discard
            out.append(current)
        current, number = None, None

    for t, command, arg in events:
        if command == "start" or (command == "on" and current is None):
            close(t)
            current = Segment(t, end_ns, label=f"episode {len(out)}", task=arg if isinstance(arg, str) else None)
        elif command in ("stop", "discard"):
            if current is None:
                warnings.append(f"{command!r} at {t / 1e9:.3f} s without an open episode")
            close(t, discard=command == "discard")
        elif command == "number":
            value = int(arg)  # type: ignore[arg-type]
            if value < 0:
                close(t)
            elif value != number:
                close(t)
                current, number = Segment(t, end_ns, label=f"episode number {value}"), value
        elif command == "unknown":
            warnings.append(f"unknown episode command {arg!r} at {t / 1e9:.3f} s ignored")
    if current is not None:
        close(end_ns)
    return out, warnings
