"""The buyer-facing functions' router: what reaches which route, and the proxy response API Gateway reads."""

from __future__ import annotations

import json
from decimal import Decimal
from http import HTTPStatus

import pytest

from marketplace_saas.routing import JSON, Request, Response, Router
from tests.support.events import api_event


class Refused(Exception):
    pass


class RefusedHard(Refused):
    pass


def _router() -> Router:
    router = Router(not_found=lambda request: Response(HTTPStatus.NOT_FOUND, "none", "text/plain"))

    @router.get("/api/thing")
    def thing(request: Request) -> Response:
        return Response(HTTPStatus.OK, {"type": request.headers.get("content-type")}, JSON)

    @router.post("/api/thing")
    def make(request: Request) -> Response:
        if request.body == "refuse":
            raise RefusedHard("no")
        if request.body == "crash":
            raise KeyError("bug")
        return Response(
            HTTPStatus.CREATED, {"quantity": Decimal("17.420")}, JSON, {"X-A": "1"}, ("a=1", "b=2")
        )

    @router.on_error(Refused)
    def refused(request: Request, error: Exception) -> Response:
        return Response(HTTPStatus.CONFLICT, f"{request.method} {type(error).__name__}", "text/plain")

    return router


def test_a_route_gets_the_request_with_header_names_in_lower_case() -> None:
    result = _router().resolve(api_event("GET", "/api/thing", content_type="text/csv"))
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"type": "text/csv"}
    assert result["multiValueHeaders"] == {"Content-Type": [JSON]}
    assert result["isBase64Encoded"] is False


def test_one_trailing_slash_reaches_the_same_route_as_api_gateway_does() -> None:
    assert _router().resolve(api_event("GET", "/api/thing/"))["statusCode"] == 200
    assert _router().resolve(api_event("GET", "/api/thing//"))["statusCode"] == 404


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/other"), ("PUT", "/api/thing"), ("GET", "/API/THING"), ("GET", "/")]
)
def test_an_unknown_route_or_method_gets_the_not_found_answer(method: str, path: str) -> None:
    result = _router().resolve(api_event(method, path))
    assert (result["statusCode"], result["body"]) == (404, "none")


def test_json_is_compact_decimals_keep_their_digits_and_every_cookie_is_its_own_header() -> None:
    result = _router().resolve(api_event("POST", "/api/thing", body="ok"))
    assert result["statusCode"] == 201
    assert result["body"] == '{"quantity":"17.420"}'
    assert result["multiValueHeaders"] == {"Content-Type": [JSON], "X-A": ["1"], "Set-Cookie": ["a=1", "b=2"]}


def test_an_error_is_answered_by_the_handler_of_its_nearest_registered_class() -> None:
    result = _router().resolve(api_event("POST", "/api/thing", body="refuse"))
    assert (result["statusCode"], result["body"]) == (409, "POST RefusedHard")


def test_an_error_nobody_handles_reaches_lambda() -> None:
    with pytest.raises(KeyError):
        _router().resolve(api_event("POST", "/api/thing", body="crash"))


def test_an_event_without_headers_or_body_is_a_request_with_none() -> None:
    event = api_event("GET", "/api/thing")
    event["headers"] = None
    event["body"] = None
    request = Request.from_event(event)
    assert (request.headers, request.body, request.is_base64_encoded) == ({}, None, False)
    assert _router().resolve(event)["statusCode"] == 200


def test_a_redirect_has_no_content_type() -> None:
    response = Response(HTTPStatus.SEE_OTHER, "", None, {"Location": "/"})
    assert response.proxy_result()["multiValueHeaders"] == {"Location": ["/"]}
