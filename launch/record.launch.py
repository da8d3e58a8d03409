"""`ros2 launch rynnvla_ros record.launch.py [name:=value ...]`: the 'record' profile of rynnvla_ros/profiles.py.

`ros2 launch rynnvla_ros record.launch.py --show-args` (or `rynnvla-bringup record --help`) lists the arguments.
"""

from rynnvla_ros.launch_builder import launch_description


def generate_launch_description():
    return launch_description("record")
