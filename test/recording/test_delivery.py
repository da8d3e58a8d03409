"""DeliveryTracker: gaps in each publisher's sequence numbers are messages the subscription never received."""

from rynnvla_ros.recording.delivery import DeliveryTracker


def test_gaps_per_publisher_are_missed_messages() -> None:
    d = DeliveryTracker()
    a, b = b"publisher-a", b"publisher-b"
    assert d.see("/js", a, 40) == 0  # a publisher seen first mid-stream: its earlier messages are not ours to count
    assert d.see("/js", a, 41) == 0
    assert d.see("/js", b, 1) == 0  # a second publisher on the same topic has its own numbers
    assert d.see("/js", a, 45) == 3  # 42, 43, 44 never arrived
    assert d.see("/js", b, 2) == 0
    assert d.see("/img", a, 7) == 0  # other topic, other count
    assert d.see("/img", a, 9) == 1
    assert d.see("/js", a, 3) == 0  # numbers going back: a restarted publisher, counted afresh
    assert d.see("/js", a, 5) == 1
    assert d.see("/js", a, None) == 0  # no sequence number from the middleware: received, nothing inferred
    assert dict(d.missed) == {"/js": 4, "/img": 1} and d.total_missed() == 5
    assert dict(d.received) == {"/js": 8, "/img": 2}
