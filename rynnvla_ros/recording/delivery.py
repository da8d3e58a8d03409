"""Messages a subscription never received, counted from the publishers' sequence numbers.

Every DDS publisher numbers its messages 1, 2, 3, ... (``publication_sequence_number`` in rclpy's message info). A
gap between two consecutive messages of one publisher means messages published but never delivered: dropped from
the publisher's history before the subscriber acknowledged them (a KEEP_LAST publisher whose subscriber was too
slow, e.g. starved of CPU), or pushed out of the subscription's own history before they were taken.
"""

from __future__ import annotations

from collections import defaultdict


class DeliveryTracker:
    """Per topic: messages received and messages missed (gaps in each publisher's sequence numbers)."""

    def __init__(self) -> None:
        self.received: dict[str, int] = defaultdict(int)
        self.missed: dict[str, int] = defaultdict(int)
        self._last: dict[tuple[str, bytes], int] = {}

    def see(self, topic: str, publisher: bytes, sequence: int | None) -> int:
        """Account for one received message; returns how many of that publisher's messages it shows were missed.

        The first message of a publisher starts its count (it may have published before we subscribed); a
        sequence number that goes back (a restarted publisher reusing its id) starts it again.
        """
        self.received[topic] += 1
        if sequence is None:
            return 0
        key = (topic, publisher)
        last = self._last.get(key)
        self._last[key] = sequence
        if last is None or sequence <= last:
            return 0
        gap = sequence - last - 1
        self.missed[topic] += gap
        return gap

    def total_missed(self) -> int:
        """Messages missed on all topics."""
        return sum(self.missed.values())
