"""``rynnvla-bringup PROFILE [name:=value ...]``: run a launch profile's nodes in one process.

Nodes whose class sets ``OWN_PROCESS = True`` (the arm controller and the LIBERO bridge: a control loop or a
simulator must not share the Python interpreter with model inference) run as child processes of their installed
executables, with the same name, parameters and remappings; the rest share one process (so the policy and world
model share one model).

The same declaration as ``ros2 launch rynnvla_ros PROFILE.launch.py`` (rynnvla_ros/profiles.py), for tests and for
machines without the ``ros2`` command line (for example ROS 2 from the PyPI wheels). Nodes of other packages
(rviz2, robot_state_publisher) are not on PyPI: they are skipped with a log line.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rynnvla_ros.profiles import PACKAGE, PROFILES, NodeSpec, Profile, get_profile

USAGE = "usage: rynnvla-bringup PROFILE [name:=value ...] [--help]"


def share_dir() -> Path:
    """The package's installed share directory (launch/, config/, sim/)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return Path(get_package_share_directory(PACKAGE))
    except PackageNotFoundError:
        raise RuntimeError(
            "rynnvla_ros is not on the ament index (AMENT_PREFIX_PATH); run `make venv` or source the workspace"
        ) from None


def profile_help(profile: Profile) -> str:
    """Text listing a profile's arguments and nodes."""
    lines = [f"rynnvla-bringup {profile.name} [name:=value ...]: {profile.description}", "", "arguments:"]
    for a in profile.args:
        choices = f" (one of {', '.join(a.choices)})" if a.choices else ""
        lines.append(f"  {a.name + ':=' + a.default:<28} {a.description}{choices}")
    lines += ["", "nodes:"]
    for n in profile.nodes:
        cond = f"  [when {n.when.arg} is {' or '.join(n.when.values)}]" if n.when else ""
        where = n.executable if n.package == PACKAGE else f"{n.package} {n.executable}, ros2 launch only"
        lines.append(f"  {n.name} ({where}){cond}")
    return "\n".join(lines)


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["a:=1", "b:=x"]`` -> ``{"a": "1", "b": "x"}``; ValueError for anything else."""
    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"expected name:=value, got {item!r}")
        out[name] = value
    return out


def node_options(profile: Profile, spec: NodeSpec, values: dict[str, str], config_dir: Path) -> dict:
    """Keyword arguments that give a node class its name, parameter file, argument-driven parameters and remaps."""
    from rclpy.parameter import Parameter

    cli = ["--ros-args", "-r", f"__node:={spec.name}"]
    if spec.params_file:
        path = config_dir / spec.params_file
        if not path.is_file():
            raise FileNotFoundError(f"parameter file {path} of node {spec.name} is missing")
        cli += ["--params-file", str(path)]
    for src, dst in spec.remappings:
        cli += ["-r", f"{src}:={dst}"]
    overrides = [Parameter(name, value=value) for name, value in profile.parameters(spec, values).items()]
    return {"cli_args": cli, "parameter_overrides": overrides}


def _yaml_value(value: object) -> str:
    """A parameter value as rcl's ``-p name:=value`` parses it (strings quoted, so '0' stays a string)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value).lower() if isinstance(value, bool) else str(value)


def child_command(spec: NodeSpec, options: dict) -> list[str]:
    """The command line of ``spec``'s installed executable with the arguments ``node_options`` gave."""
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / spec.executable
    if not exe.is_file():
        raise FileNotFoundError(f"executable {exe} of node {spec.name} is missing; run `make venv`")
    params = [a for p in options["parameter_overrides"] for a in ("-p", f"{p.name}:={_yaml_value(p.value)}")]
    return [str(exe), *options["cli_args"], *params]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rynnvla-bringup``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE + "\n\nprofiles:\n" + "\n".join(f"  {p.name}: {p.description}" for p in PROFILES.values()))
        return 0 if args else 2
    try:
        profile = get_profile(args[0])
        if any(a in ("-h", "--help") for a in args[1:]):
            print(profile_help(profile))
            return 0
        values = profile.resolve(parse_overrides(args[1:]))
        config_dir = share_dir() / "config"
    except (ValueError, RuntimeError) as exc:
        print(f"rynnvla-bringup: {exc}", file=sys.stderr)
        return 2

    import rclpy

    from rynnvla_ros.node_runner import exit_code, spin_nodes

    rclpy.init(args=[])
    active = profile.active_nodes(values)
    own = [s for s in active if s.package == PACKAGE]
    for spec in active:
        if spec.package != PACKAGE:
            print(
                f"rynnvla-bringup: skipping {spec.name} ({spec.package} {spec.executable}): not part of {PACKAGE} and "
                f"not on PyPI; start it with `ros2 launch {PACKAGE} {profile.name}.launch.py` on a full ROS install",
                file=sys.stderr,
                flush=True,
            )
    try:
        nodes, by_name = start_nodes(profile, values, own, config_dir)
    except Exception as exc:
        print(f"rynnvla-bringup: cannot start {profile.name}: {exc}", file=sys.stderr)
        rclpy.shutdown()
        return 1
    for name, child in by_name.items():
        print(f"rynnvla-bringup: {name} runs in its own process (pid {child.pid})", flush=True)
    children = list(by_name.values())
    if not nodes and not children:
        print(f"rynnvla-bringup: no node of {profile.name} is active for these arguments", file=sys.stderr)
        rclpy.shutdown()
        return 1
    changed = [f"{a.name}:={values[a.name]}" for a in profile.args if values[a.name] != a.default]
    print(
        f"rynnvla-bringup {profile.name}: running {', '.join(s.name for s in own)}"
        + (f" ({' '.join(changed)})" if changed else ""),
        flush=True,
    )
    try:
        if nodes:
            spin_nodes(nodes)
        else:
            while all(c.poll() is None for c in children):
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop_children(children)
    return exit_code(nodes)


def start_nodes(
    profile: Profile,
    values: dict[str, str],
    specs: Sequence[NodeSpec],
    config_dir: Path,
    params: dict[str, dict[str, Any]] | None = None,
    context: Any = None,
) -> tuple[list[Any], dict[str, subprocess.Popen]]:
    """Create the nodes of ``specs`` in this process (in ``context``, rclpy's default when None) and start those
    whose class sets ``OWN_PROCESS`` as child processes; ``params``: extra parameters by node name. Returns the
    nodes and the children by node name; on an error, closes what started and raises it."""
    from rclpy.parameter import Parameter

    from rynnvla_ros.node_runner import close_nodes, node_class

    nodes: list[Any] = []
    children: dict[str, subprocess.Popen] = {}
    try:
        for spec in specs:
            cls = node_class(spec.executable)
            options = node_options(profile, spec, values, config_dir)
            extra = (params or {}).get(spec.name, {})
            options["parameter_overrides"] += [Parameter(k, value=v) for k, v in extra.items()]
            if getattr(cls, "OWN_PROCESS", False):
                children[spec.name] = start_child(spec, options)
            else:
                nodes.append(cls(**options) if context is None else cls(context=context, **options))
    except Exception:
        stop_children(list(children.values()))
        close_nodes(nodes)
        raise
    return nodes, children


def start_child(spec: NodeSpec, options: dict) -> subprocess.Popen:
    """Start ``spec``'s installed executable as a child process that gets SIGTERM when this process dies."""
    return subprocess.Popen(child_command(spec, options), preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies, however it dies (Linux; elsewhere a no-op), so a
    killed bringup leaves no node behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def stop_children(children: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGINT the child processes (a clean ROS shutdown), then kill those that do not exit within ``timeout`` s."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in children:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
