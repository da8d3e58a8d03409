"""``rynnvla-convert``: demonstrations -> LeRobot v3 datasets, and their normalisation statistics.

    rynnvla-convert bags BAG [BAG ...] -o DATASET --task "pick up the cube"   # rosbag2 (mcap / sqlite3)
    rynnvla-convert libero FILE_OR_DIR [...] -o DATASET                        # LIBERO HDF5 demos
    rynnvla-convert stats DATASET                                              # DATASET/norm_stats.json

Exit status: 0 when everything converted and checked, 1 when some bag, episode or check failed (the rest is
written and the report says what), 2 for unusable arguments or when nothing could be converted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rynnvla_model.data.lerobot_io import DatasetExistsError, parse_image_size
from rynnvla_model.data.report import ConversionReport
from rynnvla_ros import topics

if TYPE_CHECKING:
    from rynnvla_ros.dataset.units import JointUnits


def _camera(text: str) -> tuple[str, str]:
    name, sep, topic = text.partition("=")
    if not sep or not name or not topic:
        raise argparse.ArgumentTypeError(f"camera must be NAME=TOPIC, got {text!r}")
    return name, topic


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="dataset root to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--repo-id", help="LeRobot repo id recorded in the dataset (default local/<output name>)")
    p.add_argument("--image-size", type=parse_image_size, help="resize every camera to N or HxW pixels")
    p.add_argument("--no-videos", action="store_true", help="store PNG images in parquet instead of mp4 videos")
    p.add_argument("--vcodec", help="video encoder (default: lerobot's libsvtav1; e.g. h264)")
    p.add_argument("--no-stats", action="store_true", help="do not write norm_stats.json")
    p.add_argument("--report", type=Path, help="also write the JSON report here")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rynnvla-convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bags", help="rosbag2 bags -> LeRobot dataset", description="rosbag2 bags -> LeRobot dataset")
    b.add_argument("inputs", nargs="+", type=Path, help="bag directories, .mcap/.db3 files, or folders of bags")
    _common(b)
    b.add_argument(
        "--camera",
        action="append",
        type=_camera,
        metavar="NAME=TOPIC",
        help=f"camera feature observation.images.NAME from TOPIC (repeatable; default "
        f"front={topics.FRONT_IMAGE} wrist={topics.WRIST_IMAGE})",
    )
    b.add_argument("--reference", default="front", help="camera whose messages set the frame times (default front)")
    b.add_argument("--state-topic", default=topics.JOINT_STATES, help="JointState topic for observation.state")
    b.add_argument(
        "--action-topic",
        default=topics.LEADER_JOINT_STATES,
        help="action source, by its message type: JointState (a leader arm, or the controller's command "
        f"{topics.JOINT_COMMAND}), ActionChunk (first row, e.g. {topics.ACTION_CHUNK}), JointTrajectory (first point) "
        "or Float64MultiArray (default %(default)s)",
    )
    b.add_argument(
        "--joints", type=_names, help="state joints in dataset order, comma-separated (default: as published)"
    )
    b.add_argument("--action-joints", type=_names, help="names in the action source for the same joints, if different")
    b.add_argument("--time-source", choices=("receive", "header"), default="receive", help="message time to sync on")
    b.add_argument("--state-max-age", type=float, default=0.1, help="seconds before a state counts as stale")
    b.add_argument("--action-max-age", type=float, default=0.1, help="seconds before an action counts as stale")
    b.add_argument("--camera-max-age", type=float, default=0.1, help="seconds before another camera's image is stale")
    b.add_argument(
        "--fps",
        type=int,
        help="dataset frame rate (default: the reference camera's, rounded); lower: the camera's frames subsampled",
    )
    b.add_argument("--unit", choices=("deg", "rad"), default="deg", help="joint unit in the dataset (default deg)")
    b.add_argument("--gripper-joint", help="joint stored as 0-100 percent of --gripper-range (LeRobot SO100 style)")
    b.add_argument(
        "--gripper-range",
        type=float,
        nargs=2,
        metavar=("RAD_AT_0", "RAD_AT_100"),
        help="gripper positions (rad) stored as 0 and 100 with --gripper-joint",
    )
    b.add_argument(
        "--split-episodes",
        action="store_true",
        help="split bags into episodes by the episode topic (default: one episode per bag)",
    )
    b.add_argument("--episode-topic", default=topics.EPISODE, help="episode topic for --split-episodes (%(default)s)")
    b.add_argument("--task", help="task text (default for episodes without one from the episode or task topic)")
    b.add_argument("--task-topic", help=f"std_msgs/String task topic (the recorder publishes {topics.TASK})")
    b.add_argument("--robot-type", default="so100", help="robot type recorded in the dataset")
    b.add_argument(
        "--relative-joints",
        nargs="*",
        default=[],
        help="joints whose actions the model learns as deltas to the state; written to DATASET/robot_io.json "
        "(train with data.relative_dims = their indices; SO100's official option: every joint but the gripper)",
    )

    lib = sub.add_parser("libero", help="LIBERO HDF5 demos -> LeRobot dataset", description="LIBERO -> LeRobot")
    lib.add_argument("inputs", nargs="+", type=Path, help="LIBERO *.hdf5 files or folders of them")
    _common(lib)
    lib.add_argument("--no-flip", action="store_true", help="keep the images as stored (default: rotate 180°)")
    lib.add_argument("--noop-threshold", type=float, default=1e-4, help="arm-motion norm below which a step is a no-op")
    lib.add_argument("--keep-failed", action="store_true", help="also convert demos marked as failed")
    lib.add_argument("--task", help="task text for every demo (default: the file's language instruction)")
    lib.add_argument("--fps", type=int, default=20, help="dataset frame rate (LIBERO control rate, default 20)")

    st = sub.add_parser("stats", help="write DATASET/norm_stats.json", description="state/action statistics")
    st.add_argument("dataset", type=Path, help="LeRobot dataset root")
    st.add_argument("--state-key", default="observation.state")
    st.add_argument("--action-key", default="action")
    st.add_argument("--output", type=Path, help="file to write (default DATASET/norm_stats.json)")
    return parser


def _bags(args: argparse.Namespace) -> ConversionReport:
    from rynnvla_ros.dataset.bag_index import BagConfig
    from rynnvla_ros.dataset.bag_to_lerobot import BagConverter
    from rynnvla_ros.dataset.units import JointUnits

    config = BagConfig(
        reference=args.reference,
        state_topic=args.state_topic,
        action_topic=args.action_topic,
        joints=args.joints,
        action_joints=args.action_joints,
        time_source=args.time_source,
        state_max_age=args.state_max_age,
        action_max_age=args.action_max_age,
        camera_max_age=args.camera_max_age,
        fps=args.fps,
        units=JointUnits(args.unit, args.gripper_joint, tuple(args.gripper_range) if args.gripper_range else None),
        episode_topic=args.episode_topic if args.split_episodes else None,
        task=args.task,
        task_topic=args.task_topic,
        image_size=args.image_size,
        use_videos=not args.no_videos,
        vcodec=args.vcodec,
        robot_type=args.robot_type,
        repo_id=args.repo_id,
    )
    if args.camera:
        config.cameras = dict(args.camera)
    report = BagConverter(config, args.output, args.overwrite, not args.no_stats).convert(args.inputs)
    if report.written_frames:
        write_robot_io(args.output, config.units, args.relative_joints)
    return report


def write_robot_io(root: Path, units: JointUnits, relative: list[str]) -> Path | None:
    """``root/robot_io.json`` for a joint-space dataset (state and action name the same joints): the dataset's units,
    its frame period as the control period, its cameras, ``relative`` joints as deltas. None for other actions."""
    import json

    from rynnvla_ros.inference.robot_io import ROBOT_IO_FILE, RobotIO

    info = json.loads((Path(root) / "meta" / "info.json").read_text())
    features = info["features"]
    names = list(features["observation.state"]["names"])
    if list(features["action"]["names"]) != names:
        return None
    cameras = tuple(c for c in ("front", "wrist") if f"observation.images.{c}" in features)
    io = RobotIO.lerobot(
        names, units.gripper_joint, units.gripper_range, relative, 1.0 / float(info["fps"]), cameras=cameras,
        degrees=units.unit == "deg",
    )  # fmt: skip
    return io.save(Path(root) / ROBOT_IO_FILE)


def _libero(args: argparse.Namespace) -> ConversionReport:
    from rynnvla_model.data.libero import LiberoConfig, LiberoConverter

    config = LiberoConfig(
        flip=not args.no_flip,
        image_size=args.image_size,
        noop_threshold=args.noop_threshold,
        keep_failed=args.keep_failed,
        task=args.task,
        fps=args.fps,
        use_videos=not args.no_videos,
        vcodec=args.vcodec,
        repo_id=args.repo_id,
    )
    return LiberoConverter(config, args.output, args.overwrite, not args.no_stats).convert(args.inputs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rynnvla-convert``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "stats":
            from rynnvla_model.data.stats import write_dataset_stats

            path = write_dataset_stats(args.dataset, args.state_key, args.action_key, args.output)
            print(f"wrote {path}")
            return 0
        report = _bags(args) if args.command == "bags" else _libero(args)
    except (DatasetExistsError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"rynnvla-convert {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if args.report:
        report.save(args.report)
    if report.written_episodes == 0:
        return 2
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
