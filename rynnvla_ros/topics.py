"""Topic and frame names of the rynnvla_ros graph (the one place they are defined).

Nodes use short relative names (``image_raw``, ``action_chunk``); launch profiles remap them to these.
"""

FRONT_IMAGE = "/camera/front/image_raw"
FRONT_CAMERA_INFO = "/camera/front/camera_info"
WRIST_IMAGE = "/camera/wrist/image_raw"
WRIST_CAMERA_INFO = "/camera/wrist/camera_info"
