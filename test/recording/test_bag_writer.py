"""BagWriter: every queued message lands in a readable bag, the queue is bounded, write failures are clear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cdr import IMAGE, STATE, STORE, STRING, T0, T, image_cdr, state_cdr
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader

from rynnvla_ros.recording.bag_writer import LATCHED_QOS, BagWriter, RecordingError, TopicSpec, make_qos


def read_all(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    out: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, bytes(raw)))
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_queued_message_is_in_the_bag_with_type_qos_and_metadata(tmp_path: Path, storage: str) -> None:
    writer = BagWriter(tmp_path / "bag", storage=storage, metadata={"rynnvla.task": "pick"})
    writer.open_and_start()
    writer.add_topic(TopicSpec("/img", IMAGE, (make_qos(reliability=2, depth=5),)))
    writer.add_topic(TopicSpec("/js", STATE))
    writer.add_topic(TopicSpec("/task", STRING, (LATCHED_QOS,)))
    sent = {"/img": [], "/js": []}
    for i in range(200):
        data = state_cdr(i)
        assert writer.write("/js", T0 + i * 10_000_000, data)
        sent["/js"].append((T0 + i * 10_000_000, data))
        if i % 3 == 0:
            data = image_cdr(i)
            assert writer.write("/img", T0 + i * 10_000_000 + 1, data)
            sent["/img"].append((T0 + i * 10_000_000 + 1, data))
    assert writer.serialize_and_write("/task", T0, T[STRING](data="pick"))
    summary = writer.close()
    assert summary.error is None and summary.readable and summary.dropped == 0
    assert summary.written == 200 + 67 + 1 and writer.close() is summary  # idempotent

    got = read_all(tmp_path / "bag")
    assert got["/js"] == sent["/js"] and got["/img"] == sent["/img"]
    with Reader(tmp_path / "bag") as reader:
        conns = {c.topic: c for c in reader.connections}
        assert conns["/img"].msgtype == IMAGE and conns["/img"].digest == STORE.hash_rihs01(IMAGE)
        assert conns["/task"].ext.offered_qos_profiles[0].durability == QosDurability.TRANSIENT_LOCAL
        assert conns["/img"].ext.offered_qos_profiles[0].depth == 5
    msg = STORE.deserialize_cdr(got["/img"][1][1], IMAGE)
    assert msg.header.frame_id == "3" and int(msg.data[0]) == 3
    meta = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["custom_data"] == {"rynnvla.task": "pick"} and meta["version"] == 9


def test_the_queue_is_bounded_by_count_and_bytes_and_never_blocks(tmp_path: Path) -> None:
    writer = BagWriter(tmp_path / "bag", max_queue=5, max_queue_bytes=10**9)
    writer.open()  # not started: nothing leaves the queue
    writer.add_topic(TopicSpec("/js", STATE))
    start = time.perf_counter()
    accepted = [writer.write("/js", T0 + i, state_cdr(i)) for i in range(8)]
    assert time.perf_counter() - start < 0.5
    assert accepted == [True] * 5 + [False] * 3 and writer.queue_depth == 5
    assert writer.write("/js", T0 + 99, state_cdr(99), force=True)  # a marker that must not be lost
    summary = writer.close()  # drains what was queued
    assert [c.dropped for c in summary.counters.values()] == [3] and summary.written == 6
    assert [STORE.deserialize_cdr(raw, STATE).header.frame_id for _, raw in read_all(tmp_path / "bag")["/js"]] == [
        "0", "1", "2", "3", "4", "99"
    ]  # fmt: skip

    by_bytes = BagWriter(tmp_path / "bag2", max_queue=100, max_queue_bytes=3 * len(image_cdr(0)) + 10)
    by_bytes.open()
    by_bytes.add_topic(TopicSpec("/img", IMAGE))
    assert [by_bytes.write("/img", T0 + i, image_cdr(i)) for i in range(5)] == [True, True, True, False, False]
    assert by_bytes.queue_bytes == 3 * len(image_cdr(0))
    assert by_bytes.close().written == 3


def test_undeclared_topics_and_unknown_types_are_refused(tmp_path: Path) -> None:
    writer = BagWriter(tmp_path / "bag").open_and_start()
    with pytest.raises(RecordingError, match="no message definition for my_pkg/msg/Thing"):
        writer.add_topic(TopicSpec("/thing", "my_pkg/msg/Thing"))
    writer.add_topic(TopicSpec("/js", STATE))
    with pytest.raises(RecordingError, match="is sensor_msgs/msg/JointState in this bag"):
        writer.add_topic(TopicSpec("/js", IMAGE))
    with pytest.raises(KeyError, match="/nope"):
        writer.write("/nope", T0, b"")
    assert writer.close().readable


def test_paths_that_cannot_be_written_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "exists").mkdir()
    with pytest.raises(RecordingError, match="exists already"):
        BagWriter(tmp_path / "exists").open()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordingError, match="is a file, not a directory"):
        BagWriter(tmp_path / "file" / "bag").open()
    if Path("/sys").is_dir():  # not writable even for root
        with pytest.raises(RecordingError, match=r"cannot create the bag /sys/rynnvla_bag: (operation not |perm)"):
            BagWriter(Path("/sys/rynnvla_bag")).open()
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(RecordingError, match="permission denied"):
            BagWriter(locked / "bag").open()


def test_low_free_space_stops_writing_and_keeps_a_readable_bag(tmp_path: Path) -> None:
    """Free space below min_free_bytes stops the writing while the bag can still be closed (a full disk could not)."""
    free = {"bytes": 100 * 2**20}
    writer = BagWriter(
        tmp_path / "bag",
        min_free_bytes=50 * 2**20,
        check_every_bytes=1,
        free_space=lambda _path: free["bytes"],
    ).open_and_start()
    writer.add_topic(TopicSpec("/js", STATE))
    for i in range(10):
        assert writer.write("/js", T0 + i, state_cdr(i))
    deadline = time.monotonic() + 10
    while writer.counters["/js"].written < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    free["bytes"] = 10 * 2**20  # the disk fills up
    writer.write("/js", T0 + 10, state_cdr(10))
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "only 10 MB free, below the 50 MB kept free" in writer.error
    assert not writer.write("/js", T0 + 11, state_cdr(11))  # refused, counted as lost
    summary = writer.close()
    assert summary.readable and summary.written == 11 and summary.counters["/js"].lost == 1
    assert len(read_all(tmp_path / "bag")["/js"]) == 11

    with pytest.raises(RecordingError, match="only 10 MB free"):
        BagWriter(tmp_path / "bag2", min_free_bytes=50 * 2**20, free_space=lambda _p: 10 * 2**20).open()


_FSIZE_SCRIPT = r"""
import json, resource, signal, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from cdr import image_cdr, T0, IMAGE
from rynnvla_ros.recording.bag_writer import BagWriter, TopicSpec
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))
writer = BagWriter(Path(sys.argv[1])).open_and_start()
writer.add_topic(TopicSpec("/img", IMAGE))
data = image_cdr(1, size=128)  # 48 kB
accepted = 0
for i in range(200):  # 9.6 MB
    accepted += writer.write("/img", T0 + i, data)
    time.sleep(0.002)
summary = writer.close()
print(json.dumps({"error": summary.error, "written": summary.written, "accepted": accepted,
                  "lost": summary.counters["/img"].lost}))
"""


def test_a_failing_disk_write_is_reported_and_nothing_crashes(tmp_path: Path) -> None:
    """A real write failure (the file size limit, EFBIG: what a full disk looks like to the writer)."""
    script = tmp_path / "fsize.py"
    script.write_text(_FSIZE_SCRIPT)
    out = subprocess.run(
        [sys.executable, script, tmp_path / "bag", Path(__file__).parent],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "file size limit" in result["error"] and f"writing {tmp_path / 'bag'} failed" in result["error"]
    assert 0 < result["written"] < 200 and result["lost"] > 0
    assert result["written"] + result["lost"] == 200  # every message is accounted for
