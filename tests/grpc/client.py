"""A gRPC client for tests/grpc.rs: makes calls to tether.test.Test and prints one
JSON line per call, then exits 0 (a call's failure is a line, not an exit status).

  client.py --target HOST:PORT [--ca FILE --authority NAME] CALL...

Each CALL is METHOD:ARG[:KEY=VALUE,...] with METHOD echo, count, fail or sethealth;
the KEY=VALUE pairs are sent as metadata. Lines:
  {"ok": true, "reply": <echo's JSON object> | [count's messages] | "text", "trailers": {...}}
  {"ok": false, "code": "NOT_FOUND", "details": "...", "trailers": {...}}
Plaintext (h2c prior knowledge) unless --ca is given (TLS, ALPN h2, verified against it).
"""

import argparse
import json
import sys

import grpc

SERVICE = "/tether.test.Test/"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--authority")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("calls", nargs="+")
    args = parser.parse_args()

    options = []
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
        options.append(("grpc.ssl_target_name_override", args.authority))
    if args.ca:
        with open(args.ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(args.target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.target, options=options)

    for call in args.calls:
        method, _, rest = call.partition(":")
        arg, _, pairs = rest.partition(":")
        metadata = [tuple(p.split("=", 1)) for p in pairs.split(",") if p]
        line = {}
        try:
            if method == "count":
                stub = channel.unary_stream(SERVICE + "Count")
                responses = stub(arg.encode(), metadata=metadata, timeout=args.timeout)
                messages = [m.decode() for m in responses]
                line = {"ok": True, "reply": messages}
                trailers = responses.trailing_metadata()
            else:
                name = {"echo": "Echo", "fail": "Fail", "sethealth": "SetHealth"}[method]
                stub = channel.unary_unary(SERVICE + name)
                reply, state = stub.with_call(arg.encode(), metadata=metadata, timeout=args.timeout)
                text = reply.decode()
                line = {"ok": True, "reply": json.loads(text) if method == "echo" else text}
                trailers = state.trailing_metadata()
        except grpc.RpcError as e:
            line = {"ok": False, "code": e.code().name, "details": e.details()}
            trailers = e.trailing_metadata()
        line["trailers"] = {k: v for k, v in (trailers or ()) if isinstance(v, str)}
        print(json.dumps(line), flush=True)
    channel.close()


if __name__ == "__main__":
    sys.exit(main())
