"""422 validation problems speak the caller's language, field by field.

Each entry of ``errors[]`` carries a ``detail`` translated from Pydantic's stable error ``type``
(catalogue keys ``errors.field.<type>``, placeholders filled from the error's ``ctx``) and that
``type`` as ``code``. zh-CN is the default; ``Accept-Language: en`` gives Pydantic's own English.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from enum import Enum
from importlib import resources
from typing import Annotated, Any, Literal

import pytest
from fastapi.testclient import TestClient
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from cityweave.accounts.models import Role
from cityweave.i18n.fields import field_error_message
from tests.conftest import auth
from tests.rules.test_automations import BASE as AUTOMATIONS
from tests.rules.test_automations import night_light
from tests.world import World

PROBLEM = "application/problem+json"
PLACES = "/api/v1/places"
PREFERENCES = "/api/v1/users/me/notification-preferences"
GOOD_PLACE = {"id": "ca-b9", "kind": "building", "parent_id": "ca-g1", "name": "9 栋",
              "geometry": {"type": "Point", "coordinates": [113.92, 22.52]}}
ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}
HAN = re.compile(r"[\u4e00-\u9fff]")


def _admin(world: World, lang: dict[str, str]) -> dict[str, str]:
    return {**auth(world.token(Role.COMMUNITY_ADMIN)), **lang}


def _resident(world: World, lang: dict[str, str]) -> dict[str, str]:
    return {**auth(world.token(Role.RESIDENT)), **lang}


def _problem(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return response.json()


def _place(client: TestClient, world: World, lang: dict[str, str], change: dict[str, Any],
           drop: str | None = None) -> dict[str, Any]:
    body = {k: v for k, v in {**GOOD_PLACE, **change}.items() if k != drop}
    return _problem(client.post(PLACES, json=body, headers=_admin(world, lang)))


def _only(problem: dict[str, Any]) -> dict[str, Any]:
    assert len(problem["errors"]) == 1, problem["errors"]
    return problem["errors"][0]


# -- real requests ---------------------------------------------------------------------------------
def test_missing_field(client: TestClient, world: World) -> None:
    zh = _place(client, world, ZH, {}, drop="name")
    assert zh["detail"] == "请求中有字段不合法。"
    assert _only(zh) == {"pointer": "/name", "detail": "必填字段缺失。", "code": "missing"}
    en = _place(client, world, EN, {}, drop="name")
    assert en["detail"] == "The request has invalid fields."
    assert _only(en) == {"pointer": "/name", "detail": "Field required", "code": "missing"}


def test_chinese_is_the_default_without_accept_language(client: TestClient, world: World) -> None:
    problem = _place(client, world, {}, {}, drop="name")
    assert _only(problem)["detail"] == "必填字段缺失。"


def test_too_long_string_names_the_limit(client: TestClient, world: World) -> None:
    zh = _only(_place(client, world, ZH, {"name": "栋" * 201}))
    assert zh == {"pointer": "/name", "detail": "最多允许 200 个字符。", "code": "string_too_long"}
    en = _only(_place(client, world, EN, {"name": "栋" * 201}))
    assert en["detail"] == "String should have at most 200 characters"
    # the English singular, as Pydantic words it
    assert _only(_place(client, world, EN, {"name": ""}))["detail"] == "String should have at least 1 character"
    assert _only(_place(client, world, ZH, {"name": ""}))["detail"] == "至少需要 1 个字符。"


def test_webhook_url_over_500_characters(client: TestClient, world: World) -> None:
    body = {"webhook_url": "https://example.org/" + "h" * 500}
    zh = _only(_problem(client.put(PREFERENCES, json=body, headers=_resident(world, ZH))))
    assert zh == {"pointer": "/webhook_url", "detail": "最多允许 500 个字符。", "code": "string_too_long"}
    en = _only(_problem(client.put(PREFERENCES, json=body, headers=_resident(world, EN))))
    assert en["detail"] == "String should have at most 500 characters"


def test_number_out_of_range_in_body_and_query(client: TestClient, world: World) -> None:
    out_of_range = {"geometry": {"type": "Point", "coordinates": [200, 22]}}
    zh = _only(_place(client, world, ZH, out_of_range))
    assert zh == {"pointer": "/geometry/Point/coordinates/0", "detail": "应小于或等于 180.0。",
                  "code": "less_than_equal"}
    en = _only(_place(client, world, EN, out_of_range))
    assert en["detail"] == "Input should be less than or equal to 180.0"
    # a query parameter keeps `parameter` and `in`
    zh = _only(_problem(client.get(f"{PLACES}?limit=0", headers=_admin(world, ZH))))
    assert zh == {"parameter": "limit", "in": "query", "detail": "应大于或等于 1。", "code": "greater_than_equal"}
    en = _only(_problem(client.get(f"{PLACES}?limit=0", headers=_admin(world, EN))))
    assert en == {"parameter": "limit", "in": "query", "detail": "Input should be greater than or equal to 1",
                  "code": "greater_than_equal"}


def test_wrong_type(client: TestClient, world: World) -> None:
    zh = _only(_place(client, world, ZH, {"name": 42}))
    assert zh == {"pointer": "/name", "detail": "应为字符串。", "code": "string_type"}
    assert _only(_place(client, world, EN, {"name": 42}))["detail"] == "Input should be a valid string"
    zh = _only(_problem(client.get(f"{PLACES}?limit=abc", headers=_admin(world, ZH))))
    assert zh["detail"] == "应为整数，无法把该字符串解析为整数。" and zh["code"] == "int_parsing"


def test_unknown_field_and_values_outside_the_choices(client: TestClient, world: World) -> None:
    zh = _only(_place(client, world, ZH, {"surprise": True}))
    assert zh == {"pointer": "/surprise", "detail": "不允许此字段（未知字段）。", "code": "extra_forbidden"}
    assert _only(_place(client, world, EN, {"surprise": True}))["detail"] == "Extra inputs are not permitted"
    # an enum: the choices listed the Chinese way
    zh = _only(_place(client, world, ZH, {"kind": "castle"}))
    assert zh["code"] == "enum" and zh["detail"].startswith("应为以下取值之一：'city'、'district'、'street'、")
    assert zh["detail"].endswith("、'facility'。") and " or " not in zh["detail"]
    en = _only(_place(client, world, EN, {"kind": "castle"}))
    assert en["detail"].startswith("Input should be 'city', 'district', ") and en["detail"].endswith(" or 'facility'")
    # a Literal
    body = {"channels": {"major": ["pigeon"]}}
    zh = _only(_problem(client.put(PREFERENCES, json=body, headers=_resident(world, ZH))))
    assert zh == {"pointer": "/channels/major/0", "detail": "应为以下取值之一：'live'、'webhook'、'sms'、'voice'。",
                  "code": "literal_error"}
    en = _only(_problem(client.put(PREFERENCES, json=body, headers=_resident(world, EN))))
    assert en["detail"] == "Input should be 'live', 'webhook', 'sms' or 'voice'"
    # a discriminated union's tag
    zh = _only(_place(client, world, ZH, {"geometry": {"type": "Blob", "coordinates": [1, 2]}}))
    assert zh == {"pointer": "/geometry", "detail": "'type' 的取值 'Blob' 无效，应为以下之一：'Point'、'Polygon'。",
                  "code": "union_tag_invalid"}


def test_our_validators_keep_their_message_with_a_chinese_lead(client: TestClient, world: World) -> None:
    zh = _only(_place(client, world, ZH, {"name": "9\x00栋"}))
    assert zh == {"pointer": "/", "detail": "取值无效：text may not contain the NUL character", "code": "value_error"}
    en = _only(_place(client, world, EN, {"name": "9\x00栋"}))
    assert en == {"pointer": "/", "detail": "text may not contain the NUL character", "code": "value_error"}
    # a rule's validator (rules.model): the webhook must use https
    automation = {**night_light(), "actions": [{"type": "webhook", "url": "http://example.org/hook"}]}
    for lang, expected in ((ZH, "取值无效：webhooks must use https (plain http only to localhost)"),
                           (EN, "webhooks must use https (plain http only to localhost)")):
        problem = _problem(client.post(AUTOMATIONS, json=automation, headers=_resident(world, lang)))
        # rules are validated inside the service (Invalid with pointers), translated alike
        assert _only(problem) == {"pointer": "/actions/0/url", "detail": expected, "code": "value_error"}
    too_long = {**night_light(), "actions": [{"type": "webhook", "url": "https://example.org/" + "h" * 500}]}
    problem = _problem(client.post(AUTOMATIONS, json=too_long, headers=_resident(world, ZH)))
    assert _only(problem) == {"pointer": "/actions/0/url", "detail": "最多允许 500 个字符。", "code": "string_too_long"}


def test_malformed_json_is_400_in_both_languages(client: TestClient, world: World) -> None:
    headers = {"Content-Type": "application/json"}
    zh = _problem(client.post(PLACES, content=b'{"id": ', headers={**_admin(world, ZH), **headers}), 400)
    assert zh["type"] == "/problems/malformed-json" and zh["detail"] == "请求体不是有效的 JSON。"
    assert zh["errors"][0]["code"] == "json_invalid" and zh["errors"][0]["detail"].startswith("JSON 格式无效：")
    en = _problem(client.post(PLACES, content=b'{"id": ', headers={**_admin(world, EN), **headers}), 400)
    assert en["detail"] == "The body is not valid JSON." and en["errors"][0]["detail"].startswith("Invalid JSON: ")


def test_domain_rule_errors_carry_code_invalid(client: TestClient, world: World) -> None:
    zh = _place(client, world, ZH, {"parent_id": "nowhere"})
    assert zh["detail"] == "请求中有字段不合法。"  # the generic summary is translated
    assert _only(zh)["pointer"] == "/parent_id" and _only(zh)["code"] == "invalid"
    assert _place(client, world, EN, {"parent_id": "nowhere"})["detail"] == "The request has invalid fields."


def test_openapi_documents_code(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ProblemFieldError"]
    assert {"pointer", "parameter", "in", "detail", "code"} <= set(schema["properties"])
    assert schema["required"] == ["detail"]


# -- every error type the installed Pydantic raises ------------------------------------------------
class Kind(Enum):
    CITY = "city"
    DISTRICT = "district"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int

    @field_validator("a")
    @classmethod
    def _check(cls, value: int) -> int:
        if value == 5:
            raise ValueError("webhooks must use https")
        assert value != 6, "six is not allowed"
        if value == 7:
            raise PydanticCustomError("no_such_catalogue_entry", "seven is {what}", {"what": "odd"})
        return value


SAMPLES: list[tuple[Any, Any]] = [
    (Annotated[str, Field(min_length=3)], "ab"),
    (Annotated[str, Field(max_length=2)], "abc"),
    (Annotated[str, Field(pattern="^[a-z]+$")], "A"),
    (Annotated[int, Field(gt=0)], 0),
    (Annotated[int, Field(ge=1)], 0),
    (Annotated[int, Field(lt=0)], 0),
    (Annotated[float, Field(le=1.5)], 2),
    (Annotated[int, Field(multiple_of=5)], 3),
    (int, "x"), (int, 1.5), (int, [1]), (int, "1" * 5000),
    (float, "x"), (float, [1]),
    (bool, "maybe"), (bool, [1]),
    (str, 1), (Literal["a", "b", "c"], "d"), (Literal[1, 2], 3), (Kind, "x"),
    (dt.datetime, "x"), (dt.datetime, [1]), (dt.date, "2020-01-01T10:00:00"), (dt.date, "x"), (dt.time, "x"),
    (dt.timedelta, "x"), (uuid.UUID, "x"),
    (list[int], 1), (dict[str, int], 1), (tuple[int, int], 1), (set[int], 1),
    (Annotated[list[int], Field(min_length=2)], [1]), (Annotated[list[int], Field(max_length=1)], [1, 2]),
    (Annotated[list[int], Field(max_length=2)], [1, 2, 3]), (Annotated[dict[str, int], Field(max_length=1)], {"a": 1, "b": 2}),
    (HttpUrl, "x"), (HttpUrl, "ftp://a.b"),
    (Strict, {"a": 1, "b": 2}), (Strict, {}), (Strict, 1), (Strict, {"a": 5}), (Strict, {"a": 6}), (Strict, {"a": 7}),
    (None, 1),
]
# Where our English is not Pydantic's word for word (class names are not the client's business).
OWN_ENGLISH = {"model_type", "model_attributes_type", "value_error", "assertion_error"}


def _errors() -> list[dict[str, Any]]:
    found = []
    for annotation, value in SAMPLES:
        with pytest.raises(ValidationError) as info:
            TypeAdapter(annotation).validate_python(value)
        found.extend(info.value.errors())
    with pytest.raises(ValidationError) as info:
        TypeAdapter(Strict).validate_json('{"a": ')
    return [*found, *info.value.errors()]


def test_every_sampled_error_type_reads_well_in_both_languages() -> None:
    errors = _errors()
    types = {e["type"] for e in errors}
    assert {"missing", "string_too_long", "greater_than", "int_parsing", "literal_error", "enum", "too_long",
            "extra_forbidden", "value_error", "json_invalid", "url_parsing", "uuid_parsing"} <= types
    for err in errors:
        zh = field_error_message(err, "zh-CN")
        en = field_error_message(err, "en")
        assert zh and en and "{" not in zh.replace("{{", "") and "{" not in en, err
        assert HAN.search(zh), (err["type"], zh)
        if err["type"] == "no_such_catalogue_entry":  # a custom type without an entry: generic + original
            assert zh == "输入无效：seven is odd" and en == "seven is odd"
        elif err["type"] not in OWN_ENGLISH:
            assert en == err["msg"], (err["type"], en, err["msg"])
            assert zh != "输入无效：" + err["msg"], f"no Chinese entry for {err['type']}"


def test_placeholders_are_filled_from_ctx() -> None:
    by_type = {e["type"]: e for e in _errors()}
    assert field_error_message(by_type["string_too_short"], "zh-CN") == "至少需要 3 个字符。"
    assert field_error_message(by_type["greater_than"], "zh-CN") == "应大于 0。"
    assert field_error_message(by_type["less_than_equal"], "zh-CN") == "应小于或等于 1.5。"
    assert field_error_message(by_type["multiple_of"], "zh-CN") == "应为 5 的倍数。"
    assert field_error_message(by_type["too_short"], "zh-CN") == "列表至少需要 2 项，当前为 1 项。"
    dict_too_long = next(e for e in _errors() if e["type"] == "too_long" and e["ctx"]["actual_length"] is None)
    assert field_error_message(dict_too_long, "zh-CN") == "对象最多允许 1 项。"
    assert field_error_message(dict_too_long, "en") == dict_too_long["msg"]
    assert field_error_message(by_type["url_scheme"], "zh-CN") == "网址协议应为 'http'、'https'。"
    # (pytest's assertion rewriting appends the expression to the message)
    assert field_error_message(by_type["assertion_error"], "zh-CN").startswith("取值无效：six is not allowed")
    assert field_error_message(by_type["assertion_error"], "en").startswith("six is not allowed")
    literal = [e for e in _errors() if e["type"] == "literal_error"]
    assert [field_error_message(e, "zh-CN") for e in literal] == ["应为以下取值之一：'a'、'b'、'c'。",
                                                                   "应为以下取值之一：1、2。"]


def test_a_custom_error_with_a_catalogue_key_is_translated() -> None:
    # The convention for translatable validator errors: PydanticCustomError("<type>", ...) with an
    # entry errors.field.<type>; any type the catalogue knows is worded from it.
    err = {"type": "string_too_long", "msg": "too long", "ctx": {"max_length": 9}, "loc": ("body", "x")}
    assert field_error_message(err, "zh-CN") == "最多允许 9 个字符。"


def test_unknown_types_and_broken_contexts_fall_back_never_empty() -> None:
    unknown = {"type": "brand_new_type", "msg": "Something new went wrong", "loc": ("body",)}
    assert field_error_message(unknown, "en") == "Something new went wrong"
    assert field_error_message(unknown, "zh-CN") == "输入无效：Something new went wrong"
    no_ctx = {"type": "greater_than", "msg": "Input should be greater than 3", "loc": ("body",)}
    assert field_error_message(no_ctx, "en") == "Input should be greater than 3"
    assert field_error_message(no_ctx, "zh-CN") == "输入无效：Input should be greater than 3"
    assert field_error_message({"type": "", "msg": ""}, "zh-CN")


# -- the catalogues --------------------------------------------------------------------------------
def _catalogue(locale: str) -> dict[str, str]:
    return json.loads(resources.files("cityweave.i18n").joinpath(f"{locale}.json").read_text(encoding="utf-8"))


def test_error_keys_exist_in_both_catalogues_with_the_same_placeholders() -> None:
    en, zh = _catalogue("en"), _catalogue("zh-CN")
    mine = {k for k in (*en, *zh) if k.startswith("errors.")}
    assert {"errors.validation", "errors.malformed_json", "errors.field.unknown", "errors.field.missing",
            "errors.field.value_error"} <= mine
    for key in sorted(mine):
        assert key in en and key in zh, key
        assert en[key].strip() and zh[key].strip(), key
        en_fields = set(re.findall(r"(?<!\{)\{(\w+)\}", en[key]))
        zh_fields = set(re.findall(r"(?<!\{)\{(\w+)\}", zh[key]))
        assert zh_fields == en_fields, key


# -- the web pages show the same texts -------------------------------------------------------------
def test_a_web_form_error_page_words_the_field_in_the_viewers_language(client: TestClient, world: World) -> None:
    from tests.web.test_pages import RESIDENT, csrf_of, sign_in

    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    form = {"csrf": token, "category_id": "repair-power", "description": ""}
    client.cookies.set("cw_lang", "zh-CN")
    zh = client.post("/home/reports", data=form)
    assert zh.status_code == 422 and zh.headers["content-type"].startswith("text/html")
    assert '<p class="hint" lang="zh-CN">description：至少需要 2 个字符。</p>' in zh.text, zh.text
    assert "validation error" not in zh.text
    client.cookies.set("cw_lang", "en")
    en = client.post("/home/reports", data=form)
    assert en.status_code == 422
    assert '<p class="hint" lang="en">description: String should have at least 2 characters</p>' in en.text, en.text


# -- the other generic problems speak the caller's language too ---------------------------------------
def test_unknown_route_and_method_are_worded_in_the_callers_language(client: TestClient) -> None:
    zh = _problem(client.get("/api/v1/no-such-thing", headers=ZH), 404)
    assert zh["detail"] == "未找到。"
    assert _problem(client.get("/api/v1/no-such-thing", headers=EN), 404)["detail"] == "Not Found"
    zh = _problem(client.delete("/healthz", headers=ZH), 405)
    assert HAN.search(zh["detail"]), zh


def test_a_resource_outside_the_view_is_a_404_with_a_chinese_lead(client: TestClient, world: World) -> None:
    # A resident asking for a household that is not theirs: the policy hides it (404, not 403).
    zh = _problem(client.get(f"{PLACES}/ca-b1-u1-102", headers=_resident(world, ZH)), 404)
    en = _problem(client.get(f"{PLACES}/ca-b1-u1-102", headers=_resident(world, EN)), 404)
    assert not HAN.search(en["detail"])
    # The service's English specifics stay, after a lead in the caller's language.
    assert zh["detail"] == "未找到：" + en["detail"]


def test_forbidden_leads_in_chinese_and_keeps_the_policys_reason(client: TestClient, world: World) -> None:
    zh = client.post(PLACES, json=GOOD_PLACE, headers=_resident(world, ZH))
    en = client.post(PLACES, json=GOOD_PLACE, headers=_resident(world, EN))
    assert zh.status_code == en.status_code == 403, (zh.text, en.text)
    assert zh.json()["detail"] == "无权执行此操作：" + en.json()["detail"]


def test_accept_language_picks_the_first_language_we_speak(client: TestClient) -> None:
    body = _problem(client.get("/api/v1/no-such-thing", headers={"Accept-Language": "fr-FR, en;q=0.8"}), 404)
    assert body["detail"] == "Not Found"
