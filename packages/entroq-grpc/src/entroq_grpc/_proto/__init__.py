"""Generated from proto/entroq.proto by scripts/gen_proto.py; do not edit."""
