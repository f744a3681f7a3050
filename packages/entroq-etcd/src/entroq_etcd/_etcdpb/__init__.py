"""Generated gRPC stubs for etcd 3.4.23's v3 API (scripts/gen_etcd_stubs.py; do not edit).

Made from the protos in Debian's package golang-etcd-server-dev 3.4.23-4
with grpcio-tools 1.74.0; the stripped protos are in packages/entroq-etcd/proto/.
"""

ETCD_VERSION = "3.4.23"
GRPCIO_TOOLS_VERSION = "1.74.0"
