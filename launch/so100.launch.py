"""`ros2 launch rynnvla_ros so100.launch.py [name:=value ...]`: the 'so100' profile of rynnvla_ros/profiles.py.

`ros2 launch rynnvla_ros so100.launch.py --show-args` (or `rynnvla-bringup so100 --help`) lists the arguments.
"""

from rynnvla_ros.launch_builder import launch_description


def generate_launch_description():
    return launch_description("so100")
