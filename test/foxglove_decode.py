"""Decode Foxglove messages as the Foxglove app does: protobuf, with the schema (a FileDescriptorSet) they carry."""

from __future__ import annotations

from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


@cache
def message_class(schema_name: str, schema_data: bytes):
    """The protobuf class of ``schema_name`` built from a serialized FileDescriptorSet."""
    files = descriptor_pb2.FileDescriptorSet.FromString(schema_data)
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema_name))


def decode(schema_name: str, schema_data: bytes, payload: bytes):
    """A received payload as a protobuf message (fields readable by name)."""
    return message_class(schema_name, bytes(schema_data)).FromString(payload)


def decode_message(message):
    """A foxglove-sdk message object, encoded and decoded again with its own schema."""
    schema = type(message).get_schema()
    return decode(schema.name, schema.data, message.encode())
