"""A real Foxglove WebSocket client (protocol foxglove.sdk.v1 over the `websockets` library) for the viewer tests."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections import defaultdict
from contextlib import ExitStack

from foxglove_decode import decode
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]
MESSAGE_DATA, FETCH_ASSET_RESPONSE = 0x01, 0x04


class FoxgloveClient:
    """Connects, records advertised channels and received messages (by topic), subscribes and fetches assets."""

    def __init__(self, url: str) -> None:
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(url, subprotocols=SUBPROTOCOLS, max_size=None, open_timeout=10))
        self.server_info: dict = {}
        self.channels: dict[int, dict] = {}
        self.messages: dict[str, list[bytes]] = defaultdict(list)
        self.assets: dict[int, tuple[int, str, bytes]] = {}
        self._subscriptions: dict[int, int] = {}  # subscription id -> channel id
        self._next = 1
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self.ws:
                if isinstance(frame, str):
                    msg = json.loads(frame)
                    with self._lock:
                        if msg["op"] == "serverInfo":
                            self.server_info = msg
                        elif msg["op"] == "advertise":
                            self.channels.update({c["id"]: c for c in msg["channels"]})
                    continue
                opcode = frame[0]
                if opcode == MESSAGE_DATA:
                    sub_id = struct.unpack_from("<I", frame, 1)[0]
                    with self._lock:
                        topic = self.channels[self._subscriptions[sub_id]]["topic"]
                        self.messages[topic].append(bytes(frame[13:]))
                elif opcode == FETCH_ASSET_RESPONSE:
                    request_id, status, n = struct.unpack_from("<IBI", frame, 1)
                    error = frame[10 : 10 + n].decode()
                    with self._lock:
                        self.assets[request_id] = (status, error, bytes(frame[10 + n :]))
        except ConnectionClosed:
            pass

    def topics(self) -> dict[str, dict]:
        with self._lock:
            return {c["topic"]: c for c in self.channels.values()}

    def subscribe(self, topics) -> None:
        subs = []
        with self._lock:
            for channel in self.channels.values():
                if channel["topic"] in topics:
                    self._subscriptions[self._next] = channel["id"]
                    subs.append({"id": self._next, "channelId": channel["id"]})
                    self._next += 1
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    def fetch_asset(self, uri: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
        with self._lock:
            request_id, self._next = self._next, self._next + 1
        self.ws.send(json.dumps({"op": "fetchAsset", "uri": uri, "requestId": request_id}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if request_id in self.assets:
                    return self.assets[request_id]
            time.sleep(0.01)
        raise TimeoutError(f"no answer for asset {uri}")

    def decoded(self, topic: str, index: int = -1):
        """A received message decoded with its channel's schema (protobuf or JSON)."""
        with self._lock:
            channel = next(c for c in self.channels.values() if c["topic"] == topic)
            payload = self.messages[topic][index]
        if channel["encoding"] == "json":
            return json.loads(payload)
        return decode(channel["schemaName"], base64.b64decode(channel["schema"]), payload)

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.messages[topic])

    def close(self) -> None:
        self._stack.close()
        self._thread.join(timeout=5)
