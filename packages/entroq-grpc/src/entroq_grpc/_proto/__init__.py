"""Generated protobuf and gRPC code for proto/entroq.proto (scripts/gen_proto.py; do not edit)."""
