#!/usr/bin/env python3
"""The fault suite: two gateway instances on one Redis and one PostgreSQL under steady load
(/v1/messages and Okta's hook), a Twilio-shaped provider that records every message it
receives, and one fault at a time: a Redis restart, PostgreSQL stopped, the provider
flapping, SIGTERM of one instance, SIGKILL of the other mid-send.

It asserts the governance invariant over the whole run:

    messages the provider received <= audited sends + audited unknowns,
    every message received has an audit row (no send without a row),
    and no row is left pending once the instances are gone and reconciled.

Counts are printed per phase. Run by ./scripts/test.sh, which passes (environment):
GATEWAY_BIN (the binary), POSTGRES_URL (a server this script may stop and start with
PG_STOP / PG_START, shell commands), and redis-server on PATH. Standard library only.
"""

import base64
import http.client
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

API_TOKEN = "fault-suite-api-token"
OKTA_SECRET = "Basic ZmF1bHQ6c3VpdGU="


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Provider:
    """Twilio's Messages resource on loopback: records each `To`, answers per mode."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # every To, in order
        self.mode = "ok"  # ok | flapping | slow
        self.calls = 0
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                to = form.get("To", [""])[0]
                with provider.lock:
                    provider.calls += 1
                    mode, n = provider.mode, provider.calls
                if mode == "flapping" and n % 2 == 0:
                    self.answer(503, {"code": 20500, "message": "Service unavailable", "status": 503})
                    return
                with provider.lock:
                    provider.received.append(to)
                if mode == "slow":
                    time.sleep(0.5)  # the provider's own latency: sends are in flight
                self.answer(201, {
                    "sid": "SM%032x" % n, "status": "queued", "to": to,
                    "num_segments": "1", "error_code": None, "error_message": None,
                })

            def answer(self, status, body):
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the gateway gave up (killed, timed out): the message still counts

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Redis:
    def __init__(self, workdir):
        self.port = free_port()
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("redis-server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait()


class Gateway:
    def __init__(self, name, config, env):
        self.name, self.config, self.env = name, config, env
        self.process, self.address, self.lines = None, None, []
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [os.environ["GATEWAY_BIN"], "--config", self.config],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env, text=True)
        ready = threading.Event()

        def read():
            for line in self.process.stdout:
                self.lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("fields", event).get("message") == "phone-otp-gateway listening" \
                        or event.get("message") == "phone-otp-gateway listening":
                    fields = event.get("fields", event)
                    self.address = fields.get("address") or event.get("address")
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            raise SystemExit("%s did not start:\n%s" % (self.name, "".join(self.lines[-20:])))

    def signal(self, sig):
        self.process.send_signal(sig)
        self.process.wait()


class Load:
    """Steady requests spread over both instances, each to a number of its own."""

    def __init__(self, gateways):
        self.gateways = gateways
        self.lock = threading.Lock()
        self.sequence = 0
        self.statuses = {}
        self.running = False

    def next_number(self):
        with self.lock:
            self.sequence += 1
            return self.sequence

    def one(self, worker):
        n = self.next_number()
        gateway = self.gateways[n % len(self.gateways)]
        if not gateway.address:
            return
        number = "+8190%08d" % (10000000 + n)
        if n % 3 == 0:
            path, headers = "/hooks/okta/telephony", {"Authorization": OKTA_SECRET}
            body = {
                "eventId": "fault-%d" % n,
                "eventType": "com.okta.telephony.provider",
                "requestType": "com.okta.user.telephony.mfa-verification",
                "data": {"messageProfile": {
                    "phoneNumber": number, "deliveryChannel": "SMS", "otpCode": "482913"}},
            }
        else:
            path = "/v1/messages"
            headers = {"Authorization": "Bearer " + API_TOKEN, "Idempotency-Key": "fault-%d" % n}
            body = {"to": number, "code": "482913"}
        headers["content-type"] = "application/json"
        host, port = gateway.address.rsplit(":", 1)
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.request("POST", path, json.dumps(body), headers)
            status = connection.getresponse().status
            connection.close()
        except OSError:
            status = "cut"  # the instance went away mid-request
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def run(self, seconds, workers=8):
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=self.loop, args=(w, deadline)) for w in range(workers)]
        for t in threads:
            t.start()
        return threads

    def loop(self, worker, deadline):
        while time.monotonic() < deadline:
            self.one(worker)

    def take_statuses(self):
        with self.lock:
            taken, self.statuses = self.statuses, {}
        return taken


def psql(url, sql):
    out = subprocess.run(["psql", url, "-At", "-F", "\t", "-c", sql],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def main():
    base = os.environ["POSTGRES_URL"]
    name = "potp_faults_%d" % random.randrange(1 << 30)
    psql(base, "CREATE DATABASE %s" % name)
    db_url = base.rsplit("/", 1)[0] + "/" + name
    workdir = tempfile.mkdtemp(prefix="potp-faults-")
    provider = Provider()
    redis = Redis(workdir)
    config = os.path.join(workdir, "gateway.toml")
    with open(config, "w") as f:
        f.write("""listen = "127.0.0.1:0"
log_format = "json"
hmac_key_env = "PHONE_OTP_HMAC_KEY"

[server]
request_timeout_ms = 4000

[store]
kind = "redis"
url_env = "REDIS_URL"
prefix = "faults:"

[database]
url_env = "GATEWAY_DATABASE_URL"

[[providers]]
kind = "twilio"
danger_base_url = "%s"

[limits]
per_destination = "off"
per_client_ip = "off"
per_client_network = "off"
per_tenant = "off"
per_country = "off"
global = "off"

[okta]
header = "Authorization"
secret_env = "OKTA_HOOK_SECRET"
tenant = "okta"

[api]
token_env = "GATEWAY_API_TOKEN"
tenant = "internal"
scopes = ["messages:send"]
""" % provider.url)
    env = dict(os.environ,
               PHONE_OTP_HMAC_KEY=base64.b64encode(b"f" * 32).decode(),
               REDIS_URL="redis://127.0.0.1:%d/0" % redis.port,
               GATEWAY_DATABASE_URL=db_url,
               OKTA_HOOK_SECRET=OKTA_SECRET,
               GATEWAY_API_TOKEN=API_TOKEN,
               TWILIO_ACCOUNT_SID="AC0123456789abcdef0123456789abcdef",
               TWILIO_AUTH_TOKEN="fault-suite", TWILIO_FROM="+15005550006",
               RUST_LOG="warn,phone_otp_gateway=info")
    a = Gateway("a", config, env)
    b = Gateway("b", config, env)
    load = Load([a, b])

    def phase(title, seconds, fault):
        threads = load.run(seconds)
        time.sleep(seconds / 3)
        fault()
        for t in threads:
            t.join()
        print("  %-28s answers %s, provider received %d so far"
              % (title, dict(sorted(load.take_statuses().items(), key=str)), len(provider.received)))

    def restart_redis():
        redis.stop()
        time.sleep(0.5)
        redis.start()

    def stop_postgres():
        subprocess.run(os.environ["PG_STOP"], shell=True, check=True)
        time.sleep(1)
        subprocess.run(os.environ["PG_START"], shell=True, check=True)

    def flap():
        provider.mode = "flapping"

    def sigterm_a():
        provider.mode = "ok"
        a.signal(signal.SIGTERM)
        a.address = None
        a.start()

    def sigkill_b():
        provider.mode = "slow"
        time.sleep(0.3)  # sends in flight at the provider
        b.signal(signal.SIGKILL)
        b.address = None
        provider.mode = "ok"
        b.start()

    print("== fault suite: two instances, Redis, PostgreSQL, a Twilio-shaped provider")
    phase("steady", 1.5, lambda: None)
    phase("redis restart", 3, restart_redis)
    phase("postgresql stopped 1 s", 4, stop_postgres)
    phase("provider flapping", 2, flap)
    phase("sigterm of one instance", 2, sigterm_a)
    phase("sigkill of the other", 3, sigkill_b)

    # Every instance gone: each pending row is an orphan; settle them all.
    a.signal(signal.SIGTERM)
    b.signal(signal.SIGTERM)
    settle = subprocess.run([os.environ["GATEWAY_BIN"], "--config", config, "reconcile", "--all"],
                            capture_output=True, text=True, env=env)
    if settle.returncode != 0:
        raise SystemExit("reconcile failed: " + settle.stderr)
    rows = psql(db_url, "SELECT outcome, COALESCE(masked_to, ''), COALESCE(provider, '') FROM audit_records")
    redis.stop()

    outcomes = {}
    for outcome, _, _ in rows:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    sent = sum(1 for _, _, p in rows if p)
    unknown = sum(1 for o, _, _ in rows if o in ("unknown", "cancelled"))
    pending = outcomes.get("pending", 0)
    received = list(provider.received)
    recorded = {m for o, m, p in rows if p or o in ("unknown", "cancelled")}
    unrecorded = [to for to in received if to[:5] + "****" + to[-4:] not in recorded]
    print("== %d requests recorded: %s" % (len(rows), dict(sorted(outcomes.items()))))
    print("== provider received %d; audited sends %d + unknowns %d = %d; pending %d; unrecorded %d"
          % (len(received), sent, unknown, sent + unknown, pending, len(unrecorded)))
    failures = []
    if len(received) > sent + unknown:
        failures.append("more deliveries than audited sends and unknowns")
    if unrecorded:
        failures.append("sends without a row: %s" % unrecorded[:5])
    if pending:
        failures.append("%d rows left pending" % pending)
    if len(set(received)) != len(received):
        failures.append("a number received two messages")
    if sent == 0:
        failures.append("nothing was sent: the suite measured nothing")
    if failures:
        print("FAIL: " + "; ".join(failures))
        sys.exit(1)
    print("== invariant holds")


if __name__ == "__main__":
    main()
