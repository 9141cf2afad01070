"""A gRPC server for tests/grpc.rs: grpcio with generic handlers over raw bytes
(no .proto, no generated code), and grpcio-health-checking's grpc.health.v1 service.

Service tether.test.Test:
  Echo  (unary)            -> JSON {"backend", "request", "metadata"} (the metadata the call carried)
  Count (server streaming) -> N messages "<backend>:<i>", N = the request as a decimal number
  Fail  (unary)            -> status NOT_FOUND, details "no such thing: <request>"
  SetHealth (unary)        -> sets the health service's status of "" and of "tether.test.Test"
                              to the request ("SERVING" or "NOT_SERVING"); answers "ok"

--port P serves h2c (add_insecure_port); with --cert/--key, TLS with ALPN h2 (add_secure_port).
Prints "ready" once serving.
"""

import argparse
import json
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "tether.test.Test"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()

    health_servicer = health.HealthServicer()

    def echo(request, context):
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        reply = {"backend": args.name, "request": request.decode(), "metadata": metadata}
        return json.dumps(reply).encode()

    def count(request, context):
        for i in range(int(request.decode() or "3")):
            yield f"{args.name}:{i}".encode()

    def fail(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, f"no such thing: {request.decode()}")

    def set_health(request, context):
        status = health_pb2.HealthCheckResponse.ServingStatus.Value(request.decode())
        health_servicer.set("", status)
        health_servicer.set(SERVICE, status)
        return b"ok"

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "SetHealth": grpc.unary_unary_rpc_method_handler(set_health),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    address = f"127.0.0.1:{args.port}"
    if args.cert:
        with open(args.cert, "rb") as c, open(args.key, "rb") as k:
            credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
