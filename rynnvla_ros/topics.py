"""Topic and frame names of the rynnvla_ros graph (the one place they are defined).

Nodes use short relative names (``image_raw``, ``action_chunk``); launch profiles remap them to these.
"""

FRONT_IMAGE = "/camera/front/image_raw"
FRONT_CAMERA_INFO = "/camera/front/camera_info"
WRIST_IMAGE = "/camera/wrist/image_raw"
WRIST_CAMERA_INFO = "/camera/wrist/camera_info"

# Robot state and demonstration recording (read by ``rynnvla-convert bags``).
JOINT_STATES = "/joint_states"
LEADER_JOINT_STATES = "/leader/joint_states"
EPISODE = "/recorder/episode"
TASK = "/recorder/task"

# Arm commands (so100_controller): policy chunks and plain trajectories in, the commands it sent out.
ACTION_CHUNK = "/rynnvla/action_chunk"
JOINT_TRAJECTORY = "/so100/joint_trajectory"
JOINT_COMMAND = "/so100/joint_command"
# The simulated block-in-circle task (so100_controller in sim): block pose, circle and success.
TASK_STATE = "/so100/task_state"

# Policy and world model (nodes policy, world_model). The policy's joint_trajectory output is an alternative for
# trajectory controllers; it must not also feed so100_controller, which already executes ACTION_CHUNK.
POLICY_TASK = "/rynnvla/task"
POLICY_TRAJECTORY = "/rynnvla/joint_trajectory"
PREDICTED_FRONT_IMAGE = "/world_model/front/image_raw"
PREDICTED_WRIST_IMAGE = "/world_model/wrist/image_raw"

# LIBERO (node libero_bridge, profile libero): the cameras are FRONT_IMAGE and WRIST_IMAGE, the task POLICY_TASK.
# The 8-d state is a JointState with one named entry per dimension; in lock-step mode the bridge asks the policy
# for each chunk on CHUNK_REQUEST; /clock carries the simulation time.
LIBERO_STATE = "/libero/state"
LIBERO_EPISODE_STATUS = "/libero/episode_status"
CHUNK_REQUEST = "/rynnvla/chunk_request"

# Viewing: the planned chunk as the gripper's path (chunk_visualizer, for RViz) and the arm's URDF (latched), as
# robot_state_publisher publishes it.
PLANNED_PATH = "/rynnvla/planned_path"
ROBOT_DESCRIPTION = "/robot_description"

# What the recorder writes to a demonstration bag by default (node recorder, profile record): the training topics
# read by ``rynnvla-convert bags`` (cameras, arm state, leader arm and controller command as action sources, policy
# chunks, episode boundaries and task text).
RECORDED_TOPICS = (
    FRONT_IMAGE,
    WRIST_IMAGE,
    JOINT_STATES,
    LEADER_JOINT_STATES,
    JOINT_COMMAND,
    ACTION_CHUNK,
    EPISODE,
    TASK,
)
