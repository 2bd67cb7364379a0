"""A GET of the fulfillment URL answers 200 with a page (AWS Marketplace checks the URL so); POST as before.

Through the local gateway, which routes what the synthesized template's API declares: this covers the
stack's GET method, the gateway and the handler together.
"""

from __future__ import annotations

from tests.integration.local_servers.conftest import Server, exchange, post_form, status_of


def test_get_answers_200_with_a_page_saying_to_start_from_aws_marketplace(gateway: Server) -> None:
    answer = exchange(
        gateway.port, b"GET /marketplace/fulfillment HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status_of(answer) == 200
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"text/html" in head.lower()
    assert b"Start from AWS Marketplace" in body and b"set-up button" in body
    assert b"no-store" in head.lower()


def test_post_without_a_token_is_still_refused_by_the_handler(gateway: Server) -> None:
    form = b"x-amzn-marketplace-offer-type=free-trial"
    answer = post_form(gateway.port, "/marketplace/fulfillment", form)
    assert status_of(answer) == 400
    assert b"This set-up link is incomplete" in answer
