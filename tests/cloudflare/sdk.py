"""Drives Tether's Cloudflare v4 Load Balancing API with the official `cloudflare` SDK
(tests/cloudflare_api.rs runs it; scripts/cloudflare_tools.sh installs the SDK, pinned).

Every response is parsed by the SDK into its own types with strict response validation
(`_strict_response_validation=True`: a field of the wrong type is an error), and every
parsed object is checked to hold no field the SDK's type does not declare.

    sdk.py --base-url URL --token TOKEN STEP [args]

Steps (each prints one JSON object on its last line; any failure exits non-zero):
    create PORT HOST   a monitor, a pool with one origin 127.0.0.1:PORT, a load
                       balancer HOST over it with cookie affinity -> {monitor, pool, lb}
    patch IDS_JSON     origin weight 0.5, affinity header (X-User), pool health read;
                       then each object replaced (PUT) and the monitor edited (PATCH)
    show IDS_JSON      every object read back by ID and found in its list
    refuse IDS_JSON    values Tether cannot honour are refused with 400 naming the field
    delete IDS_JSON    load balancer, pool, monitor deleted; gone from the lists
    file CONF_PATH     the file's pool: its origin's weight patched to 0.25, its load
                       balancer's affinity to cookie; deleting the pool
                       refused with 409 naming the configuration file
"""

import argparse
import json
import re
import sys

import cloudflare
import pydantic
from cloudflare import Cloudflare

ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
ID = re.compile(r"^[0-9a-f]{32}$")


def fail(message):
    print(f"sdk.py: {message}", file=sys.stderr)
    sys.exit(1)


def strict(value, path="result"):
    """Fails when a parsed SDK model (at any depth) holds a field its type does not declare."""
    if isinstance(value, pydantic.BaseModel):
        extra = value.model_extra or {}
        if extra:
            fail(f"{path} ({type(value).__name__}): fields the SDK does not declare: {sorted(extra)}")
        for name in type(value).model_fields:
            strict(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            strict(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            strict(v, f"{path}.{k}")
    return value


def check(cond, message):
    if not cond:
        fail(message)


def create(client, port, host):
    monitor = strict(client.load_balancers.monitors.create(
        account_id=ACCOUNT, type="http", description="sdk-monitor", method="GET",
        path="/health", expected_codes="200", interval=1, load_balancer_monitor_timeout=1, retries=0,
        consecutive_up=1, consecutive_down=1, header={"X-Probe": ["tether"]}))
    check(ID.match(monitor.id or ""), f"monitor id {monitor.id!r}")
    check(monitor.path == "/health" and monitor.interval == 1 and monitor.timeout == 1, f"monitor {monitor}")
    pool = strict(client.load_balancers.pools.create(
        account_id=ACCOUNT, name="sdk-pool", monitor=monitor.id, minimum_origins=1,
        origins=[{"name": "origin-1", "address": "127.0.0.1", "port": port, "enabled": True, "weight": 1}],
        origin_steering={"policy": "random"}))
    check(ID.match(pool.id or ""), f"pool id {pool.id!r}")
    check(pool.monitor == monitor.id, f"pool.monitor {pool.monitor!r} != {monitor.id!r}")
    check([o.port for o in pool.origins] == [port], f"pool origins {pool.origins}")
    lb = strict(client.load_balancers.create(
        zone_id=ZONE, name=host, default_pools=[pool.id], fallback_pool=pool.id,
        proxied=True, session_affinity="cookie", session_affinity_ttl=1800,
        session_affinity_attributes={"samesite": "Lax", "secure": "Never"}))
    check(ID.match(lb.id or ""), f"load balancer id {lb.id!r}")
    check(lb.name == host and lb.default_pools == [pool.id], f"load balancer {lb}")
    check(lb.session_affinity == "cookie" and lb.session_affinity_ttl == 1800, f"affinity {lb}")
    for o in (monitor, pool, lb):
        check(o.created_on and o.modified_on, f"created_on/modified_on missing: {o}")
    return {"monitor": monitor.id, "pool": pool.id, "lb": lb.id}


def show(client, ids):
    monitor = strict(client.load_balancers.monitors.get(ids["monitor"], account_id=ACCOUNT))
    pool = strict(client.load_balancers.pools.get(ids["pool"], account_id=ACCOUNT))
    lb = strict(client.load_balancers.get(ids["lb"], zone_id=ZONE))
    check(monitor.id == ids["monitor"] and pool.id == ids["pool"] and lb.id == ids["lb"], "ids")
    check(ids["monitor"] in [m.id for m in strict(list(client.load_balancers.monitors.list(account_id=ACCOUNT)))], "monitor listed")
    check(ids["pool"] in [p.id for p in strict(list(client.load_balancers.pools.list(account_id=ACCOUNT)))], "pool listed")
    check(ids["lb"] in [b.id for b in strict(list(client.load_balancers.list(zone_id=ZONE)))], "load balancer listed")
    return {"pool_weight": pool.origins[0].weight, "session_affinity": lb.session_affinity}


def patch(client, ids):
    pool = strict(client.load_balancers.pools.edit(
        ids["pool"], account_id=ACCOUNT,
        origins=[{"name": "origin-1", "address": "127.0.0.1", "port": show_port(client, ids), "enabled": True, "weight": 0.5}]))
    check(pool.origins[0].weight == 0.5, f"weight after edit: {pool.origins}")
    lb = strict(client.load_balancers.edit(
        ids["lb"], zone_id=ZONE, session_affinity="header", session_affinity_ttl=600,
        session_affinity_attributes={"headers": ["X-User"], "require_all_headers": True}))
    check(lb.session_affinity == "header", f"affinity after edit: {lb.session_affinity}")
    check(lb.session_affinity_attributes.headers == ["X-User"], f"{lb.session_affinity_attributes}")
    health = strict(client.load_balancers.pools.health.get(ids["pool"], account_id=ACCOUNT))
    check(health.pool_id == ids["pool"], f"health pool_id {health.pool_id}")
    check(health.pop_health.healthy is True, f"pool health {health}")
    check(all(o.ip.healthy for o in health.pop_health.origins), f"origins health {health}")
    replace(client, ids)
    return {"weight": 0.5, "session_affinity": "header", "healthy": True}


def replace(client, ids):
    """PUT of each object (the whole object as given) and PATCH of the monitor."""
    port = show_port(client, ids)
    monitor = strict(client.load_balancers.monitors.update(
        ids["monitor"], account_id=ACCOUNT, type="http", description="sdk-monitor", method="GET",
        path="/health", expected_codes="2xx", interval=2, load_balancer_monitor_timeout=1,
        retries=0, consecutive_up=1, consecutive_down=1))
    check(monitor.id == ids["monitor"] and monitor.interval == 2 and monitor.expected_codes == "2xx",
          f"monitor after update: {monitor}")
    monitor = strict(client.load_balancers.monitors.edit(ids["monitor"], account_id=ACCOUNT, expected_body="ok"))
    check(monitor.expected_body == "ok" and monitor.interval == 2, f"monitor after edit: {monitor}")
    pool = strict(client.load_balancers.pools.update(
        ids["pool"], account_id=ACCOUNT, name="sdk-pool", monitor=ids["monitor"],
        origins=[{"name": "origin-1", "address": "127.0.0.1", "port": port, "weight": 0.5},
                 {"name": "origin-2", "address": "127.0.0.1", "port": port, "enabled": False}]))
    check(pool.id == ids["pool"] and [o.name for o in pool.origins] == ["origin-1", "origin-2"],
          f"pool after update: {pool.origins}")
    check(pool.origins[1].enabled is False and pool.monitor == ids["monitor"], f"pool after update: {pool}")
    lb = strict(client.load_balancers.update(
        ids["lb"], zone_id=ZONE, name=lb_name(client, ids),
        default_pools=[ids["pool"]], fallback_pool=ids["pool"], steering_policy="random",
        random_steering={"default_weight": 0.7}, session_affinity="header", session_affinity_ttl=600,
        session_affinity_attributes={"headers": ["X-User"], "require_all_headers": True}))
    check(lb.id == ids["lb"] and lb.steering_policy == "random", f"load balancer after update: {lb}")
    check(lb.random_steering.default_weight == 0.7 and lb.session_affinity == "header", f"{lb}")




def lb_name(client, ids):
    return client.load_balancers.get(ids["lb"], zone_id=ZONE).name


def show_port(client, ids):
    return client.load_balancers.pools.get(ids["pool"], account_id=ACCOUNT).origins[0].port


def refuse(client, ids):
    out = {}
    for name, call in [
        ("steering_policy", lambda: client.load_balancers.edit(ids["lb"], zone_id=ZONE, steering_policy="geo")),
        ("type", lambda: client.load_balancers.monitors.create(account_id=ACCOUNT, type="icmp_ping")),
        ("follow_redirects", lambda: client.load_balancers.monitors.create(account_id=ACCOUNT, type="http", follow_redirects=True)),
        ("pool_sets", lambda: client.load_balancers.edit(ids["lb"], zone_id=ZONE, extra_body={"pool_sets": [{"name": "x"}]})),
        # A value of the wrong type: the 400 names its field path.
        ("pool.origins[0].weight", lambda: client.load_balancers.pools.edit(ids["pool"], account_id=ACCOUNT, extra_body={
            "origins": [{"name": "origin-1", "address": "127.0.0.1", "weight": "heavy"}]})),
    ]:
        try:
            call()
        except cloudflare.BadRequestError as e:
            errors = e.body.get("errors", []) if isinstance(e.body, dict) else []
            check(any(name in err.get("message", "") for err in errors),
                  f"{name}: the 400 does not name the field: {e.body}")
            # Cloudflare's code for a body that does not validate.
            check(all(err.get("code") == 1002 for err in errors), f"{name}: codes: {e.body}")
            check(e.body.get("success") is False, f"{name}: success is not false: {e.body}")
            out[name] = 400
            continue
        fail(f"{name}: accepted, but Tether cannot honour it")
    wrong = Cloudflare(api_token="not-the-token", base_url=str(client.base_url), max_retries=0,
                       _strict_response_validation=True)
    try:
        wrong.load_balancers.pools.list(account_id=ACCOUNT)
        fail("a wrong token was accepted")
    except cloudflare.AuthenticationError as e:
        errors = e.body.get("errors", []) if isinstance(e.body, dict) else []
        # Cloudflare's "Authentication error".
        check(errors and all(err.get("code") == 10000 for err in errors), f"401 body: {e.body}")
        out["token"] = 401
    return out


def delete(client, ids):
    for call, kind in [
        (lambda: client.load_balancers.delete(ids["lb"], zone_id=ZONE), "lb"),
        (lambda: client.load_balancers.pools.delete(ids["pool"], account_id=ACCOUNT), "pool"),
        (lambda: client.load_balancers.monitors.delete(ids["monitor"], account_id=ACCOUNT), "monitor"),
    ]:
        gone = strict(call())
        check(gone.id == ids[kind], f"delete {kind}: id {gone.id!r}")
    check(ids["lb"] not in [b.id for b in client.load_balancers.list(zone_id=ZONE)], "load balancer still listed")
    check(ids["pool"] not in [p.id for p in client.load_balancers.pools.list(account_id=ACCOUNT)], "pool still listed")
    check(ids["monitor"] not in [m.id for m in client.load_balancers.monitors.list(account_id=ACCOUNT)], "monitor still listed")
    try:
        client.load_balancers.pools.get(ids["pool"], account_id=ACCOUNT)
        fail("a deleted pool is still found")
    except cloudflare.NotFoundError:
        pass
    return {"deleted": 3}


def file_objects(client, conf_path):
    pools = strict(list(client.load_balancers.pools.list(account_id=ACCOUNT)))
    pool = next((p for p in pools if p.name == "file-pool"), None)
    check(pool is not None, f"file-pool not listed: {[p.name for p in pools]}")
    origin = pool.origins[0]
    edited = strict(client.load_balancers.pools.edit(
        pool.id, account_id=ACCOUNT,
        origins=[{"name": origin.name, "address": origin.address, "port": origin.port, "weight": 0.25}]))
    check(edited.origins[0].weight == 0.25, f"file pool weight: {edited.origins}")
    lbs = strict(list(client.load_balancers.list(zone_id=ZONE)))
    lb = next((b for b in lbs if b.name == "file.example.com"), None)
    check(lb is not None and lb.default_pools == [pool.id], f"file load balancer: {lbs}")
    lb = strict(client.load_balancers.edit(lb.id, zone_id=ZONE, session_affinity="cookie"))
    check(lb.session_affinity == "cookie" and lb.session_affinity_ttl == 82800, f"file load balancer: {lb}")
    try:
        client.load_balancers.pools.delete(pool.id, account_id=ACCOUNT)
        fail("deleting the file's pool was accepted")
    except cloudflare.ConflictError as e:
        message = " ".join(err.get("message", "") for err in e.body.get("errors", []))
        check(conf_path in message, f"the 409 does not name {conf_path}: {e.body}")
    return {"weight": 0.25}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("step")
    parser.add_argument("args", nargs="*")
    a = parser.parse_args()
    client = Cloudflare(api_token=a.token, base_url=a.base_url, max_retries=0, timeout=20,
                        _strict_response_validation=True)
    try:
        if a.step == "create":
            out = create(client, int(a.args[0]), a.args[1])
        elif a.step == "file":
            out = file_objects(client, a.args[0])
        else:
            ids = json.loads(a.args[0])
            out = {"show": show, "patch": patch, "refuse": refuse, "delete": delete}[a.step](client, ids)
    except cloudflare.APIStatusError as e:
        fail(f"{a.step}: HTTP {e.status_code}: {e.body}")
    except cloudflare.APIResponseValidationError as e:
        fail(f"{a.step}: the SDK refused a response: {e}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
