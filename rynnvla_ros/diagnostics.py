"""``diagnostic_msgs`` helpers shared by the nodes that publish on ``/diagnostics``."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


def diagnostic_status(name: str, hardware_id: str, level: bytes, message: str, values: dict) -> DiagnosticStatus:
    """A DiagnosticStatus with ``values`` as key/value strings (floats with 4 significant digits)."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, level=level, message=message)
    status.values = [KeyValue(key=k, value=f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    return status
