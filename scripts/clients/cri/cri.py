"""A CRI client for scripts/clients/cri.sh: one call of Kubernetes' CRI per run, in JSON.

    python3 cri.py SOCKET PB_DIR METHOD [REQUEST_JSON]

Sends METHOD (RunPodSandbox, ExecSync, ImageStatus, ...) of runtime.v1's RuntimeService or
ImageService to the gRPC server on the unix SOCKET, the request given as the JSON form of its
message (proto field names), and prints the response as JSON (bytes fields as text). PB_DIR
holds api_pb2.py, which protoc made from api.proto beside this file. A failed call prints the
gRPC status and its message on stderr and exits 1.
"""

import json
import sys

import grpc
from google.protobuf import json_format


def main() -> int:
    sock, pb_dir, method = sys.argv[1:4]
    request_json = sys.argv[4] if len(sys.argv) > 4 else "{}"
    sys.path.insert(0, pb_dir)
    import api_pb2  # noqa: E402  (generated into PB_DIR by cri.sh)

    for service in api_pb2.DESCRIPTOR.services_by_name.values():
        if method in service.methods_by_name:
            break
    else:
        print(f"cri.py: no method {method} in api.proto", file=sys.stderr)
        return 2
    desc = service.methods_by_name[method]
    request_type = getattr(api_pb2, desc.input_type.name)
    response_type = getattr(api_pb2, desc.output_type.name)
    request = json_format.Parse(request_json, request_type())

    with grpc.insecure_channel(f"unix://{sock}") as channel:
        call = channel.unary_unary(
            f"/{service.full_name}/{method}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        try:
            response = call(request, timeout=60)
        except grpc.RpcError as err:
            print(f"{err.code().name}: {err.details()}", file=sys.stderr)
            return 1

    out = json_format.MessageToDict(
        response, preserving_proto_field_name=True, including_default_value_fields=True
    )
    # ExecSync's stdout/stderr are bytes (base64 in JSON): show them as the text they are
    for field in response.DESCRIPTOR.fields:
        if field.type == field.TYPE_BYTES:
            out[field.name] = getattr(response, field.name).decode(errors="replace")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
