#!/usr/bin/env python3
"""Measures a Lambda function's cold start: from process start to the first event handled.

A minimal Lambda runtime API on 127.0.0.1 hands the function one event and records when its
response arrives. The function's AWS clients point at a moto server on loopback (start it with
scripts/moto.sh), so no request leaves the machine.

Usage: scripts/lambda-cold-start.py BINARY EVENT_JSON [RUNS]
Prints the median and each run in milliseconds.
"""

import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time


def measure(binary, event, moto):
    done = threading.Event()
    state = {"served": False}

    class RuntimeApi(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.endswith("/invocation/next") and not state["served"]:
                state["served"] = True
                body = event.encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", "cold-start-1")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:wxkf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                # A second `next` waits: the measurement ends with the first response.
                done.wait(10)
                self.send_response(503)
                self.end_headers()

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            state["response"] = self.rfile.read(length).decode()
            state["path"] = self.path
            state["end"] = time.perf_counter()
            self.send_response(202)
            self.end_headers()
            done.set()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "wxkf-cold-start",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": moto,
        "WXKF_TABLE": os.environ.get("WXKF_TABLE", "wxkf-cold-start"),
        "WXKF_APIGW_ENDPOINT": moto,
        "WXKF_TOKEN_SECRET": "fixture-token-secret",
        "WXKF_API_KEYS": "test-api-key",
        "WXKF_WECHAT_TOKEN": "wechat-test-token",
        "RUST_LOG": "warn",
    }
    start = time.perf_counter()
    process = subprocess.Popen([binary], env=env)
    finished = done.wait(30)
    process.kill()
    process.wait()
    server.shutdown()
    if not finished:
        sys.exit(f"{binary} handled no event within 30 s")
    if "/error" in state["path"]:
        sys.exit(f"{binary} reported an error: {state['response']}")
    return (state["end"] - start) * 1000, state["response"]


def main():
    binary, event_path = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    moto = os.environ.get("WXKF_MOTO_ENDPOINT", "http://127.0.0.1:5005")
    event = open(event_path, encoding="utf-8").read()
    json.loads(event)
    times = []
    for _ in range(runs):
        elapsed, response = measure(binary, event, moto)
        times.append(elapsed)
    name = os.path.basename(binary)
    if name == "bootstrap":
        name = os.path.basename(os.path.dirname(binary))
    print(f"{name}: median {statistics.median(times):.1f} ms, "
          f"runs {', '.join(f'{t:.1f}' for t in times)}; last response {response[:120]}")


if __name__ == "__main__":
    main()
