"""Message types for reading and writing bags with ``rosbags`` (no ROS installation needed).

The standard types come from rosbags' built-in ROS 2 store; our own interfaces (``rynnvla_ros/msg/ActionChunk``)
are registered from their ``.msg`` text, found in the source tree or in the installed package's share directory.
Definitions embedded in a bag (mcap files carry them) take precedence for that bag.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "rynnvla_ros"
CUSTOM_MESSAGES = ("ActionChunk",)
"""Our interfaces in msg/ (type names ``rynnvla_ros/msg/<name>``)."""

ACTION_CHUNK = f"{PACKAGE}/msg/ActionChunk"


def msg_file(name: str) -> Path:
    """Path of ``msg/<name>.msg``: the source tree first, then ``share/rynnvla_ros/msg`` on the ament prefixes."""
    candidates = [Path(__file__).resolve().parents[2] / "msg" / f"{name}.msg"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / PACKAGE / "msg" / f"{name}.msg")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name}.msg not found; looked in: {', '.join(str(p) for p in candidates)}")


def custom_types() -> dict:
    """Parsed definitions of our custom messages (rosbags ``Typesdict``)."""
    types: dict = {}
    for name in CUSTOM_MESSAGES:
        types.update(get_types_from_msg(msg_file(name).read_text(encoding="utf-8"), f"{PACKAGE}/msg/{name}"))
    return types


@cache
def base_typestore() -> Typestore:
    """ROS 2 (Kilted) standard types plus our custom messages."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(custom_types())
    return store


def _embedded_types(connection: Connection) -> dict:
    fmt, data = connection.msgdef.format, connection.msgdef.data
    if fmt == MessageDefinitionFormat.MSG and data:
        return get_types_from_msg(data, connection.msgtype)
    if fmt == MessageDefinitionFormat.IDL and data:
        sep = "=" * 80 + "\n"
        types: dict = {}
        parts = data.split(sep)[1:] if data.startswith(f"{sep}IDL: ") else [data]
        for part in parts:
            types.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
        return types
    return {}


def typestore_for(connections: Iterable[Connection]) -> Typestore:
    """A typestore that can deserialize every connection of a bag.

    The base store is used when it knows all types; otherwise the bag's embedded definitions are added (and
    replace the base definitions of the same names).
    """
    connections = list(connections)
    base = base_typestore()
    if all(c.msgtype in base.types for c in connections):
        return base
    types = dict(base.fielddefs)
    for connection in connections:
        types.update(_embedded_types(connection))
    missing = sorted({c.msgtype for c in connections} - set(types))
    if missing:
        raise KeyError(f"no definition for message types {missing} (not standard and not embedded in the bag)")
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    return store
