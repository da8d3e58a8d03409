"""rynnvla_ros: ROS 2 nodes around the RynnVLA-002 model (cameras, SO100 controller, policy, world model, LIBERO).

The generated interfaces (``rynnvla_ros.msg``) are installed by the CMake build next to these modules; extending
the package path lets them be found also when the source tree comes first on ``sys.path`` (tests, development).
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
