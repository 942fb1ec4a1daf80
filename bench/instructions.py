#!/usr/bin/env python3
"""Instructions per publish of a server binary, counted by callgrind (noise does not change them).

usage: bench/instructions.py ./target/release/message-queue [N]

Runs the server under `valgrind --tool=callgrind` on a fresh data directory, publishes N and then
2N messages of 1 KB over one keep-alive connection (two runs), and prints the difference divided by N.
Timer-driven work (WAL checkpoints every 20 ms) grows with the run's wall time, so compare builds
on the same machine and read the per-library split that callgrind_annotate gives.
"""
import base64, hashlib, hmac, http.client, json, os, re, signal, subprocess, sys, tempfile, time

SECRET = "instructions-secret-of-at-least-32-bytes"


def token():
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps({"sub": "callgrind", "exp": int(time.time()) + 3600}).encode())
    sig = enc(hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def total(binary, n):
    data, out = tempfile.mkdtemp(), tempfile.mktemp(suffix=".callgrind")
    env = dict(os.environ, MESSAGE_QUEUE_PORT="0", MESSAGE_QUEUE_DATA_DIR=data, JWT_SECRET=SECRET, RUST_LOG="warn")
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in server.stdout:
        found = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if found:
            break
    conn = http.client.HTTPConnection(found.group(1), int(found.group(2)), timeout=60)
    body = json.dumps({"queue": "callgrind", "message": {"data": "x" * 1000}})
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token()}
    for _ in range(n):
        conn.request("POST", "/message-queue/publish", body, headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    conn.close()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    annotated = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True).stdout
    line = next(l for l in annotated.splitlines() if "PROGRAM TOTALS" in l)
    return int(line.split()[0].replace(",", ""))


if __name__ == "__main__":
    binary, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    small, large = total(binary, n), total(binary, 2 * n)
    print(f"{binary}: {small:,} instructions for {n} publishes, {large:,} for {2 * n}: "
          f"{(large - small) / n:,.0f} per publish")
