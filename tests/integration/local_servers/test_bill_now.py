"""The gateway's "Bill now" call: JSON only (a page on another site cannot send it), and an answer even when
the metering job cannot run. (Billing through it end to end: tests/e2e/test_local_mode.py.)"""

from __future__ import annotations

import json

from tests.integration.local_servers.conftest import Server, exchange, status_of


def _post(server: Server, content_type: str) -> bytes:
    request = (
        f"POST /_local/bill-now HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    return exchange(server.port, request.encode())


def test_a_form_post_is_refused_so_another_sites_page_cannot_bill(gateway: Server) -> None:
    answer = _post(gateway, "application/x-www-form-urlencoded")
    assert status_of(answer) == 415
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "unsupported_media_type"


def test_a_job_that_cannot_reach_aws_is_reported_and_the_gateway_serves_on(gateway: Server) -> None:
    answer = _post(gateway, "application/json")  # this gateway's AWS endpoints are a closed port
    assert status_of(answer) == 502
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "metering_failed" and body["message"].startswith("the metering job failed: ")
    assert status_of(exchange(gateway.port, gateway.normal_request)) == 200
