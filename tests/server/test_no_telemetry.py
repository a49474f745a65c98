"""FastAPI's built-in OpenTelemetry hooks stay off: with a tracer, a meter and a logger provider
installed globally and ``FASTAPI_OTEL_AUTO_CONFIGURE=true`` (what a host's environment may
hold), requests to openwen start no span, record no metric and log nothing through them. Run in
a child process: OpenTelemetry's global providers can be set once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, sys
from pathlib import Path
from opentelemetry import trace, metrics
from opentelemetry._logs import set_logger_provider, LoggerProvider, NoOpLogger
from opentelemetry.trace import NoOpTracer, TracerProvider
from opentelemetry.metrics import NoOpMeter, MeterProvider

calls = []

class Tracer(NoOpTracer):
    def start_span(self, *a, **k):
        calls.append("span")
        return super().start_span(*a, **k)

    def start_as_current_span(self, *a, **k):
        calls.append("span")
        return super().start_as_current_span(*a, **k)

class Tracers(TracerProvider):
    def get_tracer(self, *a, **k):
        calls.append("tracer")
        return Tracer()

class Meters(MeterProvider):
    def get_meter(self, *a, **k):
        calls.append("meter")
        return NoOpMeter("x")

class Loggers(LoggerProvider):
    def get_logger(self, *a, **k):
        calls.append("logger")
        return NoOpLogger("x")

trace.set_tracer_provider(Tracers())
metrics.set_meter_provider(Meters())
set_logger_provider(Loggers())

from fastapi.testclient import TestClient
from openwen.config import Settings
from openwen.server.application import create_app

app = create_app(Settings(home=Path(sys.argv[1])))
with TestClient(app, base_url="http://127.0.0.1:8800") as client:
    statuses = [client.get(path).status_code for path in ("/health", "/v1/models", "/nowhere")]
print(json.dumps({"calls": calls, "statuses": statuses}))
'''


def test_fastapi_telemetry_stays_off_whatever_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "FASTAPI_OTEL_AUTO_CONFIGURE": "true",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/", "OPENWEN_LOCAL_MODELS": "false"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "home")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statuses"][0] == 200 and result["statuses"][2] == 404
    assert result["calls"] == []
