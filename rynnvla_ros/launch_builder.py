"""Turn a profile of :mod:`rynnvla_ros.profiles` into a launch_ros ``LaunchDescription`` (used by launch/*.py)."""

from __future__ import annotations

import os

from rynnvla_ros.profiles import get_profile


def launch_description(profile_name: str):
    """Launch description of a profile: one ``DeclareLaunchArgument`` per argument, one ``Node`` per node."""
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PythonExpression
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    from launch import LaunchDescription

    profile = get_profile(profile_name)
    config_dir = os.path.join(get_package_share_directory("rynnvla_ros"), "config")
    actions = [
        DeclareLaunchArgument(
            a.name, default_value=a.default, description=a.description, choices=list(a.choices) or None
        )
        for a in profile.args
    ]
    for spec in profile.nodes:
        parameters: list = [os.path.join(config_dir, spec.params_file)] if spec.params_file else []
        if spec.params:
            parameters.append(
                {
                    param: ParameterValue(LaunchConfiguration(arg), value_type=profile.arg(arg).type)
                    for param, arg in spec.params
                }
            )
        condition = None
        if spec.when is not None:
            condition = IfCondition(
                PythonExpression(["'", LaunchConfiguration(spec.when.arg), f"'.lower() in {spec.when.values!r}"])
            )
        actions.append(
            Node(
                package="rynnvla_ros",
                executable=spec.executable,
                name=spec.name,
                parameters=parameters,
                remappings=list(spec.remappings),
                condition=condition,
                output="screen",
            )
        )
    return LaunchDescription(actions)
