"""Turn a profile of :mod:`rynnvla_ros.profiles` into a launch_ros ``LaunchDescription`` (used by launch/*.py).

The arguments are declared as launch arguments; the nodes are made when the launch runs (an ``OpaqueFunction``), from
the argument values resolved by :meth:`Profile.resolve` exactly as ``rynnvla-bringup`` resolves them (defaults,
``auto`` values, conditions), so both start the same graph.
"""

from __future__ import annotations

import os

from rynnvla_ros.profiles import PACKAGE, NodeSpec, Profile, get_profile


def node_parameters(profile: Profile, spec: NodeSpec, values: dict[str, str], config_dir: str) -> list:
    """``parameters`` of a launch_ros Node: the node's YAML, then the values of its arguments and computed ones."""
    parameters: list = [os.path.join(config_dir, spec.params_file)] if spec.params_file else []
    typed = profile.parameters(spec, values)
    if typed:
        parameters.append(typed)
    return parameters


def node_arguments(spec: NodeSpec, share: str) -> list[str]:
    """Command-line arguments of a node, ``{share}`` replaced by the package's share directory."""
    return [a.replace("{share}", share) for a in spec.arguments]


def launch_description(profile_name: str):
    """Launch description of a profile: one ``DeclareLaunchArgument`` per argument, the nodes made at launch."""
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    profile = get_profile(profile_name)
    share = get_package_share_directory(PACKAGE)
    config_dir = os.path.join(share, "config")

    def make_nodes(context, *_args, **_kwargs) -> list:
        given = {a.name: LaunchConfiguration(a.name).perform(context) for a in profile.args}
        values = profile.resolve(given)
        return [
            Node(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                parameters=node_parameters(profile, spec, values, config_dir),
                remappings=list(spec.remappings),
                arguments=node_arguments(spec, share),
                output="screen",
            )
            for spec in profile.active_nodes(values)
        ]

    actions = [
        DeclareLaunchArgument(
            a.name, default_value=a.default, description=a.description, choices=list(a.choices) or None
        )
        for a in profile.args
    ]
    actions.append(OpaqueFunction(function=make_nodes))
    return LaunchDescription(actions)
