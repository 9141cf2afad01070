"""Many concurrent socket.io sessions through a proxy, with python-socketio's own
client (transports: polling, then the upgrade to websocket). Reports JSON on stdout.

  python load.py --url http://127.0.0.1:PORT --sessions 200 --rounds 5

Each session has its own cookie jar (a browser of its own): it connects, does
--rounds echo round trips (each answered by the server that holds the session; the
server's per-sid count must go 1, 2, 3...), and, with --hold-until FILE, keeps doing
one round trip every --interval seconds until FILE exists (at most --max-hold
seconds), reconnecting as the client does when the connection is cut; then
--rounds more, and it disconnects. A line {"phase": "connected", ...} is printed
once every session has done its first rounds (the caller may then drain, kill or
upgrade something and create FILE); the last line is the report:

  {"phase": "done", "total", "failed", "errors": {why: count}, "by_server": {...},
   "first_server": {...}, "final_server": {...}, "websocket": n, "reconnected": n,
   "same_server_after_reconnect": n, "lost": n, "unsent": n, "sessions": [...]}

A session fails when: it cannot connect (with --retry-connect: within
--connect-timeout, retries counted in connect_retries), its first connect needed more
than one engine.io handshake (the client's own reconnection hid a lost session; not
with --retry-connect), an echo gets no answer or a wrong one in its first or last rounds,
it does not end on websocket when websocket was asked, or it is not connected
at the end. Echoes that go unanswered during the hold (the connection was cut
under them) are counted as lost, not as failures; echoes not sent because the
session was reconnecting are counted as unsent.
"""

import argparse
import asyncio
import collections
import json
import logging
import os
import sys
import time

import aiohttp
import socketio


ENGINEIO_LOGGER = logging.getLogger("load.engineio")


class Session:
    def __init__(self, index, args):
        self.index = index
        self.args = args
        self.errors = []
        self.servers = []  # the server of each connect, in order
        self.connects = 0
        self.disconnects = 0
        self.lost = 0
        self.unsent = 0
        self.echoes = 0
        self.n = 0
        self.connected = asyncio.Event()
        self.client = None
        self.http = None
        self.transport = None
        self.handshakes = 0  # engine.io sessions opened (GET without sid)
        self.http_5xx = 0

    async def on_request_start(self, session, context, params):
        query = params.url.query
        if "sid" not in query and query.get("transport") == "polling":
            self.handshakes += 1

    async def on_request_end(self, session, context, params):
        if params.response.status >= 500:
            self.http_5xx += 1

    def report(self):
        return {
            "index": self.index,
            "servers": self.servers,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "echoes": self.echoes,
            "lost": self.lost,
            "unsent": self.unsent,
            "transport": self.transport,
            "handshakes": self.handshakes,
            "http_5xx": self.http_5xx,
            "errors": self.errors,
        }

    async def echo(self, strict):
        """One round trip; True when answered right. `strict`: a miss is an error."""
        self.n += 1
        try:
            answer = await self.client.call("echo", {"n": self.n}, timeout=self.args.echo_timeout)
        except socketio.exceptions.TimeoutError:
            if strict:
                self.errors.append("echo timed out")
            else:
                self.lost += 1
            return False
        except (socketio.exceptions.BadNamespaceError, socketio.exceptions.SocketIOError) as e:
            if strict:
                self.errors.append("echo not sent: " + type(e).__name__)
            else:
                self.unsent += 1
            return False
        if not isinstance(answer, dict) or answer.get("n") != self.n or "error" in answer:
            self.errors.append("wrong answer: %r" % (answer,))
            return False
        self.echoes += 1
        if self.servers and answer.get("server") != self.servers[-1]:
            self.errors.append(
                "answered by %s, connected to %s" % (answer.get("server"), self.servers[-1])
            )
            return False
        return True

    async def run(self, ready, release, gate):
        args = self.args
        jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1 too
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self.on_request_start)
        trace.on_request_end.append(self.on_request_end)
        self.http = aiohttp.ClientSession(cookie_jar=jar, trace_configs=[trace])
        self.client = self.new_client()

        try:
            async with gate:
                await self.connect_with_retries()
                if not self.errors:
                    await self.connected.wait()
                    for _ in range(args.rounds):
                        if not await self.echo(strict=True):
                            break
                if not self.errors and self.handshakes > 1 and not args.retry_connect:
                    # The client's own reconnection made it work in the end, but the
                    # first engine.io session was lost: the user saw a reconnect.
                    self.errors.append("needed %d engine.io handshakes to connect" % self.handshakes)
            ready.set_one()
            if args.hold_until and not self.errors:
                await self.hold(release)
            if not self.errors:
                # After the hold: connected again (bounded), then the last rounds.
                try:
                    await asyncio.wait_for(self.connected.wait(), args.connect_timeout)
                except asyncio.TimeoutError:
                    self.errors.append("not connected after the hold")
                count_before = len(self.errors)
                if count_before == 0:
                    for _ in range(args.rounds):
                        if not await self.echo(strict=True):
                            break
            self.transport = self.client.transport() if self.client.connected else None
            if not self.errors and "websocket" in args.transports and self.transport != "websocket":
                self.errors.append("ended on %s, not websocket" % self.transport)
        finally:
            ready.set_one()
            try:
                await asyncio.wait_for(self.client.disconnect(), 5)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            await self.http.close()

    def new_client(self):
        """A python-socketio client on this session's HTTP session (its cookie jar)."""
        args = self.args
        client = socketio.AsyncClient(
            http_session=self.http,
            reconnection=True,
            reconnection_delay=0.2,
            reconnection_delay_max=1,
            handle_sigint=False,
            request_timeout=args.echo_timeout,
            engineio_logger=ENGINEIO_LOGGER if args.log_upgrades else False,
        )

        @client.event
        async def connect():
            self.connects += 1
            try:
                who = await client.call("whoami", {}, timeout=args.echo_timeout)
                self.servers.append(who.get("server", "?"))
            except Exception as e:  # noqa: BLE001 - any failure here is a session error
                self.servers.append("?")
                self.errors.append("whoami after connect: " + type(e).__name__)
            self.connected.set()

        @client.event
        async def disconnect(*_):
            self.disconnects += 1
            self.connected.clear()

        return client

    async def connect_with_retries(self):
        """socket.io's connect, retried (as its reconnection would) until the timeout."""
        args = self.args
        deadline = time.monotonic() + args.connect_timeout
        last = None
        while time.monotonic() < deadline:
            try:
                await self.client.connect(
                    args.url,
                    transports=args.transports,
                    wait_timeout=args.echo_timeout,
                    auth={"user": "load-%d" % self.index},
                )
                return
            except socketio.exceptions.ConnectionError as e:
                last = str(e) or type(e).__name__
                self.connect_failures += 1
                if not args.retry_connect:
                    break
                # A fresh client, as a user's reload would make (same cookies).
                try:
                    await asyncio.wait_for(self.client.disconnect(), 5)
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
                self.client = self.new_client()
                await asyncio.sleep(0.2)
        self.errors.append("connect failed: %s" % last)

    connect_failures = 0

    async def hold(self, release):
        args = self.args
        deadline = time.monotonic() + args.max_hold
        while not release.is_set() and time.monotonic() < deadline:
            if self.connected.is_set():
                await self.echo(strict=False)
            else:
                self.unsent += 1
            try:
                await asyncio.wait_for(release.wait(), args.interval)
            except asyncio.TimeoutError:
                pass


class Countdown:
    """Counts sessions through their first rounds; prints the 'connected' line once."""

    def __init__(self, n, sessions):
        self.left = n
        self.done = set()
        self.sessions = sessions
        self.on_all_ready = None

    def set_one(self):
        task = asyncio.current_task()
        if task in self.done:
            return
        self.done.add(task)
        self.left -= 1
        if self.left == 0:
            by_server = collections.Counter(s.servers[0] for s in self.sessions if s.servers)
            failed = sum(1 for s in self.sessions if s.errors)
            print(json.dumps({"phase": "connected", "by_server": by_server, "failed": failed}), flush=True)
            if self.on_all_ready:
                self.on_all_ready()


async def report_hold(sessions, release):
    """While the sessions are held: a progress line every 0.2 s, for the caller to
    wait on (how many are connected now, how many were cut and came back)."""
    while not release.is_set():
        print(json.dumps({
            "phase": "hold",
            "connected": sum(1 for s in sessions if s.connected.is_set()),
            "disconnects": sum(s.disconnects for s in sessions),
            "reconnected": sum(1 for s in sessions if s.connects > 1),
            "current_server": collections.Counter(s.servers[-1] for s in sessions if s.servers),
        }), flush=True)
        try:
            await asyncio.wait_for(release.wait(), 0.2)
        except asyncio.TimeoutError:
            pass


async def watch_file(path, release, max_hold):
    deadline = time.monotonic() + max_hold
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    release.set()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=100, help="sessions connecting at once")
    parser.add_argument("--transports", default="polling,websocket")
    parser.add_argument("--echo-timeout", type=float, default=5)
    parser.add_argument("--connect-timeout", type=float, default=20)
    parser.add_argument("--retry-connect", action="store_true",
                        help="retry a failed first connect with a fresh client (counted in "
                             "connect_retries); default: a failed first connect, or one that "
                             "needed a second handshake, fails the session")
    parser.add_argument("--hold-until", help="keep the sessions open until this file exists")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--max-hold", type=float, default=60)
    parser.add_argument("--log-upgrades", action="store_true",
                        help="engine.io client warnings (a failed upgrade, and why) on stderr")
    args = parser.parse_args()
    if args.log_upgrades:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
        ENGINEIO_LOGGER.setLevel(logging.WARNING)
    args.transports = args.transports.split(",")

    sessions = [Session(i, args) for i in range(args.sessions)]
    ready = Countdown(len(sessions), sessions)
    release = asyncio.Event()
    gate = asyncio.Semaphore(args.concurrency)
    watcher = None
    reporter = []
    if args.hold_until:
        watcher = asyncio.ensure_future(watch_file(args.hold_until, release, args.max_hold))
        ready.on_all_ready = lambda: reporter.append(
            asyncio.ensure_future(report_hold(sessions, release)))
    else:
        release.set()
    started = time.monotonic()
    await asyncio.gather(*(s.run(ready, release, gate) for s in sessions))
    if watcher:
        watcher.cancel()
    for task in reporter:
        task.cancel()

    errors = collections.Counter(e for s in sessions for e in s.errors[:1])
    reconnected = [s for s in sessions if s.connects > 1]
    print(json.dumps({
        "phase": "done",
        "total": len(sessions),
        "failed": sum(1 for s in sessions if s.errors),
        "errors": errors,
        "connect_retries": sum(s.connect_failures for s in sessions),
        "first_server": collections.Counter(s.servers[0] for s in sessions if s.servers),
        "final_server": collections.Counter(s.servers[-1] for s in sessions if s.servers),
        "websocket": sum(1 for s in sessions if s.transport == "websocket"),
        "reconnected": len(reconnected),
        "same_server_after_reconnect": sum(1 for s in reconnected if len(set(s.servers)) == 1),
        "lost": sum(s.lost for s in sessions),
        "unsent": sum(s.unsent for s in sessions),
        "echoes": sum(s.echoes for s in sessions),
        "handshakes": sum(s.handshakes for s in sessions),
        "http_5xx": sum(s.http_5xx for s in sessions),
        "seconds": round(time.monotonic() - started, 2),
        "sessions": [s.report() for s in sessions],
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
