"""A real-time app for the tests: python-socketio (engine.io polling and websocket)
served by aiohttp, one process per endpoint.

Each process knows its name and keeps every session's state in its own memory, as
real socket.io apps do: a poll or an upgrade that reaches another process is refused
by python-socketio (400, unknown sid), so a load balancer without affinity fails.

  python app.py --name a --port 8001 --static DIR

Routes:
  /socket.io/      the socket.io server; events:
                     whoami -> {server, user, user_connects}
                     echo {n} -> {server, n, count}   (count: this sid's echoes so far)
  /                the browser page (page.html) with this process's name in it
  /socket.io.min.js  the socket.io browser client (from npm, DIR)
  /whoami          this process's name (text)
  /stats           {name, connects, open, echoes, reports} (JSON)
  /report          POST: the browser page's result (JSON), kept for /stats
  /sse?n=N&stream=ID  N server-sent events; after event i the server waits (at most
                   10 s) for GET /sse-ack?stream=ID&i=i, so the stream can only finish
                   if every event reached the client before the next was written.
"""

import argparse
import asyncio
import json
import os

import socketio
from aiohttp import web

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--static", required=True, help="socket.io-client's dist/ directory")
    args = parser.parse_args()
    name = args.name

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins="*",
        ping_interval=5,
        ping_timeout=10,
    )
    # sid -> {"count": echoes on this sid}; user -> connects of that user here.
    sessions = {}
    users = {}
    stats = {"connects": 0, "echoes": 0}

    @sio.event
    async def connect(sid, environ, auth=None):
        user = (auth or {}).get("user", sid) if isinstance(auth, dict) else sid
        users[user] = users.get(user, 0) + 1
        sessions[sid] = {"count": 0, "user": user}
        stats["connects"] += 1

    @sio.event
    async def disconnect(sid, *args):
        sessions.pop(sid, None)

    @sio.event
    async def whoami(sid, data=None):
        session = sessions.get(sid)
        if session is None:
            return {"error": "unknown session", "server": name}
        user = session["user"]
        return {"server": name, "user": user, "user_connects": users.get(user, 0)}

    @sio.event
    async def echo(sid, data):
        session = sessions.get(sid)
        if session is None:
            return {"error": "unknown session", "server": name}
        session["count"] += 1
        stats["echoes"] += 1
        return {"server": name, "n": data.get("n"), "count": session["count"]}

    app = web.Application()
    sio.attach(app)

    page = open(os.path.join(HERE, "page.html"), encoding="utf-8").read()

    async def index(request):
        return web.Response(text=page.replace("{{SERVER}}", name), content_type="text/html")

    async def client_js(request):
        return web.FileResponse(os.path.join(args.static, "socket.io.min.js"))

    async def whoami_http(request):
        return web.Response(text=name)

    reports = []

    async def report(request):
        reports.append(json.loads(await request.text()))
        return web.Response(text="ok")

    async def stats_http(request):
        body = dict(stats, name=name, open=len(sessions), reports=reports)
        return web.Response(text=json.dumps(body), content_type="application/json")

    acks = {}

    def ack_event(stream, i):
        key = (stream, i)
        if key not in acks:
            acks[key] = asyncio.Event()
        return acks[key]

    async def sse(request):
        n = int(request.query.get("n", "5"))
        stream = request.query.get("stream", "s")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for i in range(n):
            await response.write(f"id: {i}\ndata: {name} {i}\n\n".encode())
            try:
                await asyncio.wait_for(ack_event(stream, i).wait(), timeout=10)
            except asyncio.TimeoutError:
                await response.write(f"event: error\ndata: event {i} not acknowledged\n\n".encode())
                break
            finally:
                acks.pop((stream, i), None)
        else:
            await response.write(b"event: end\ndata: done\n\n")
        await response.write_eof()
        return response

    async def sse_ack(request):
        ack_event(request.query.get("stream", "s"), int(request.query.get("i", "0"))).set()
        return web.Response(text="ok")

    app.router.add_get("/", index)
    app.router.add_get("/socket.io.min.js", client_js)
    app.router.add_get("/whoami", whoami_http)
    app.router.add_get("/stats", stats_http)
    app.router.add_post("/report", report)
    app.router.add_get("/sse", sse)
    app.router.add_get("/sse-ack", sse_ack)

    # SIGTERM/SIGINT stop it within a second (the tests SIGKILL it).
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None,
                shutdown_timeout=1)


if __name__ == "__main__":
    main()
