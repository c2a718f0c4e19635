"""Spreadsheet import and export: templates, all-or-nothing, row errors in zh-CN and en, scope,
parents earlier in the sheet, round trips, masking by role, hostile files, and the CLI.

Every test runs on SQLite and PostgreSQL (through the ``client``/``ctx`` fixtures).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from typer.testing import CliRunner

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.errors import Conflict
from cityweave.i18n import LOCALES
from cityweave.places import service as places_service
from cityweave.places.models import Place
from cityweave.transfer import importer
from cityweave.transfer.importer import MAX_ROWS
from cityweave.transfer.templates import PLACES, RESIDENTS, SheetKind
from tests.conftest import TEST_KEY, auth
from tests.world import SQUARE, World

ADMIN = Role.COMMUNITY_ADMIN  # admin_a, community "ca"
PLACE_HEADER = ["编号/id", "类型/kind", "上级编号/parent_id", "名称/name"]
RESIDENT_HEADER = ["姓名/name", "电话/phone", "身份证号/id_number", "户编号/household_id", "关系/role"]
VALID_ID = "11010519491231002X"  # the worked example of GB 11643: a valid check digit


# -- helpers ----------------------------------------------------------------------------------------
def csv_bytes(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def upload(client: TestClient, world: World, sheet: str, content: bytes, filename: str = "sheet.csv", *,
           role: Role = ADMIN, dry_run: bool = False, headers: dict[str, str] | None = None) -> Response:
    return client.post(
        f"/api/v1/import/{sheet}",
        params={"dry_run": "true"} if dry_run else None,
        files={"file": (filename, content, "application/octet-stream")},
        headers={**auth(world.token(role)), **(headers or {})},
    )


def table_of(content: bytes, filename: str) -> list[list[Any]]:
    """A downloaded sheet's rows (header first), blanks as None, whatever the format."""
    if filename.endswith(".csv"):
        assert content.startswith(b"\xef\xbb\xbf"), "CSV must start with a UTF-8 BOM for Excel"
        rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
        return [[cell or None for cell in row] for row in rows]
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


def export(client: TestClient, world: World, name: str, *, role: Role = ADMIN, **params: str) -> list[list[Any]]:
    response = client.get(f"/api/v1/export/{name}", params=params, headers=auth(world.token(role)))
    assert response.status_code == 200, response.text
    rows = table_of(response.content, name)
    assert response.headers["x-row-count"] == str(len(rows) - 1)
    return rows


def by_key(rows: list[list[Any]], key: str) -> dict[str, dict[str, Any]]:
    """Rows as dicts by column key (from the bilingual header), indexed by the first column."""
    keys = [h.split("/")[-1] for h in rows[0]]
    return {row[0]: dict(zip(keys, row, strict=True)) for row in rows[1:]}


def place_exists(client: TestClient, world: World, place_id: str) -> bool:
    response = client.get(f"/api/v1/places/{place_id}", headers=auth(world.token(Role.PLATFORM_ADMIN)))
    return response.status_code == 200


def problem(response: Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def codes(body: dict[str, Any]) -> set[tuple[int | None, str | None, str]]:
    return {(e["row"], e["field"], e["code"]) for e in body["errors"]}


# -- templates --------------------------------------------------------------------------------------
def test_csv_template_has_bom_bilingual_headers_and_skipped_examples_and_imports_once_filled(client, world):
    response = client.get("/api/v1/templates/places.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = table_of(response.content, "t.csv")
    assert rows[0] == PLACES.headers and rows[0][:4] == PLACE_HEADER
    assert len(rows) > 1 and all(row[0].startswith("#") for row in rows[1:])

    filled = response.content + csv_bytes([
        ["ca-b7", "楼栋", "ca-g1", "七号楼", "Building 7", "", "", "113.91", "22.51"],
        ["ca-b7-u1", "unit", "ca-b7", "一单元"],
    ])
    result = upload(client, world, "places", filled)
    assert result.status_code == 200, result.text
    assert result.json()["counts"] == {"rows": 2, "places": 2}  # the example rows were skipped
    building = client.get("/api/v1/places/ca-b7", headers=auth(world.token(ADMIN))).json()
    assert building["geometry"] == {"type": "Point", "coordinates": [113.91, 22.51]}
    assert not place_exists(client, world, "yuhua-b03")


def test_xlsx_template_has_bold_header_help_sheet_text_columns_and_imports_once_filled(client, world):
    response = client.get("/api/v1/templates/residents.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["居民 residents", "说明 Help"]
    data = workbook.worksheets[0]
    assert [c.value for c in data[1]] == RESIDENTS.headers and all(c.font.b for c in data[1])
    assert str(data["A2"].value).startswith("#")
    id_column = RESIDENTS.headers.index("身份证号/id_number") + 1
    assert data.column_dimensions[openpyxl.utils.get_column_letter(id_column)].number_format == "@"
    help_text = [row[0] for row in workbook["说明 Help"].iter_rows(values_only=True)]
    assert set(RESIDENTS.headers) <= set(help_text)

    data.append(["赵六", "13912345678", VALID_ID, None, None, "ca-b1-u1-102", "租户", None, "老年人"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = upload(client, world, "residents", buffer.getvalue(), "filled.xlsx")
    assert result.status_code == 200, result.text
    assert result.json()["counts"]["persons"] == 1
    rows = by_key(export(client, world, "residents.csv", within="ca-b1-u1-102"), "name")
    assert rows["赵六"]["id_number"] == VALID_ID and rows["赵六"]["role"] == "租户"
    assert rows["赵六"]["care_tags"] == "老年人" and rows["赵六"]["gender"] == "女"  # from the ID number


def test_unknown_template_is_a_problem_not_a_crash(client):
    assert problem(client.get("/api/v1/templates/castles.csv"))["status"] == 422
    assert problem(client.get("/api/v1/templates/places.pdf"))["status"] == 422


# -- all or nothing, row errors in the reader's language ---------------------------------------------
THREE_GOOD_ONE_BAD = [
    PLACE_HEADER,
    ["ca-b7", "building", "ca-g1", "七号楼"],
    ["ca-b7-u1", "unit", "ca-b7", "一单元"],
    ["ca-b7-u1-101", "household", "ca-b7-u1", "101"],
    ["ca-b7-u1-102", "castle", "ca-b7-u1", "102"],
]


def test_one_bad_row_writes_nothing_and_is_reported_in_chinese_by_default(client, world):
    body = problem(upload(client, world, "places", csv_bytes(THREE_GOOD_ONE_BAD)))
    assert body["type"] == "/problems/validation-error"
    assert body["detail"] == "未导入任何数据：1 行有错误。"
    assert body["errors"] == [{
        "row": 5, "column": "类型/kind", "field": "kind", "code": "import.bad_kind",
        "message": "无法识别的地点类型“castle”，可选：城市, 区, 街道, 社区, 网格, 楼栋, 单元, 户, 设施",
    }]
    for place_id in ("ca-b7", "ca-b7-u1", "ca-b7-u1-101"):
        assert not place_exists(client, world, place_id)


def test_row_errors_in_english_with_accept_language(client, world):
    body = problem(upload(client, world, "places", csv_bytes(THREE_GOOD_ONE_BAD), headers={"Accept-Language": "en"}))
    assert body["detail"] == "Nothing was imported: rows with errors: 1."
    assert body["errors"][0]["message"].startswith('unknown place kind "castle"; use one of: city, district')
    assert body["errors"][0]["row"] == 5


def test_row_numbers_are_those_excel_shows_even_after_blank_rows(client, world):
    rows = [PLACE_HEADER, ["ca-b7", "building", "ca-g1", "七号楼"], [], [], ["ca-b7-u1", "unit", "ca-b7", ""]]
    body = problem(upload(client, world, "places", xlsx_bytes(rows), "sheet.xlsx"))
    assert codes(body) == {(5, "name", "import.required")}
    assert not place_exists(client, world, "ca-b7")


def test_every_problem_in_every_row_is_reported_at_once(client, world):
    rows = [
        PLACE_HEADER + ["经度/longitude", "纬度/latitude", "设施类型/facility_type", "楼层/floor"],
        ["Bad Id!", "building", "ca-g1", "x", "200", "", "", ""],
        ["ca-f1", "facility", "ca", "闸机", "", "", "", "二楼"],
        ["ca-b7", "building", "ca-g1", "七号楼", "113.9", "22.5", "gate", ""],
        ["ca-b7", "building", "ca-g1", "重复", "", "", "", ""],
        ["ca-b7-u9", "household", "ca-b7", "户挂在楼下", "", "", "", ""],
    ]
    body = problem(upload(client, world, "places", csv_bytes(rows), headers={"Accept-Language": "en"}))
    assert codes(body) == {
        (2, "id", "import.bad_id"),
        (2, "longitude", "import.out_of_range"),
        (2, "latitude", "import.coordinates_pair"),
        (3, "facility_type", "import.needs_facility_type"),
        (3, "floor", "import.bad_number"),
        (4, "facility_type", "import.facility_type_only"),
        (5, "id", "import.duplicate_id"),
        (6, "parent_id", "import.bad_parent_kind"),
    }
    messages = {(e["row"], e["field"]): e["message"] for e in body["errors"]}
    assert messages[(5, "id")] == 'the id "ca-b7" is already used in row 4'
    assert messages[(6, "parent_id")] == "a household must sit under: unit"
    assert body["detail"] == "Nothing was imported: rows with errors: 5."


def test_dry_run_checks_everything_and_writes_nothing(client, world):
    good = csv_bytes(THREE_GOOD_ONE_BAD[:4])
    result = upload(client, world, "places", good, dry_run=True)
    assert result.status_code == 200, result.text
    assert result.json()["dry_run"] is True and result.json()["counts"]["places"] == 3
    assert result.json()["message"] == "全部 3 行均无误；试导入未写入任何数据。"
    assert not place_exists(client, world, "ca-b7")
    problem(upload(client, world, "places", csv_bytes(THREE_GOOD_ONE_BAD), dry_run=True))
    assert upload(client, world, "places", good).status_code == 200
    assert place_exists(client, world, "ca-b7-u1-101")


def test_a_failure_while_writing_rolls_back_every_row_already_written(ctx: AppContext, monkeypatch):
    """Checks cannot see concurrent changes; the savepoint keeps the import whole regardless."""
    monkeypatch.setattr(importer, "_PLACE_BATCH", 1)  # one place per write step
    real_insert = places_service.insert_checked
    calls = []

    def insert_then_conflict(call: Call, batch: Any, **kwargs: Any) -> int:
        calls.append(batch[0][0].id)
        if len(calls) == 3:
            raise Conflict(f"a place with id {batch[0][0].id!r} already exists")
        return real_insert(call, batch, **kwargs)

    monkeypatch.setattr(places_service, "insert_checked", insert_then_conflict)
    with ctx.db.session() as session:  # commits: only the savepoint is rolled back
        report = importer.import_sheet(Call(ctx, session, Principal.system("test")), SheetKind.PLACES,
                                       csv_bytes(THREE_GOOD_ONE_BAD[:4]), filename="x.csv", locale="en")
    assert not report.ok and calls == ["ca-b7", "ca-b7-u1", "ca-b7-u1-101"]
    assert [(e.row, e.code) for e in report.errors] == [(4, "import.write_failed")]
    with ctx.db.session() as session:
        assert session.execute(select(Place).where(Place.id.like("ca-b7%"))).first() is None
        assert session.execute(select(AuditRecord).where(AuditRecord.object_id == "ca-b7")).first() is None


# -- scope and permissions ----------------------------------------------------------------------------
def test_rows_outside_the_callers_scope_are_row_errors_and_nothing_is_written(client, world):
    rows = [
        PLACE_HEADER,
        ["ca-b8", "building", "ca-g1", "八号楼"],       # inside community ca: fine
        ["cz", "community", "tc-d1-s1", "新社区"],      # under a street the admin can see, not change
        ["cb-b8", "building", "cb-g1", "别的社区"],      # community cb: invisible, so "not found"
        ["ca-b1", "building", "ca-g1", "已存在"],        # exists already
    ]
    body = problem(upload(client, world, "places", csv_bytes(rows)))
    assert codes(body) == {
        (3, "parent_id", "import.not_allowed"),
        (4, "parent_id", "import.unknown_parent"),
        (5, "id", "import.exists"),
    }
    assert not place_exists(client, world, "ca-b8")


def test_residents_outside_scope_or_in_unknown_households_are_rejected(client, world):
    rows = [
        RESIDENT_HEADER,
        ["甲", "13911110001", "", "ca-b1-u1-102", "户主"],
        ["乙", "13911110002", "", "cb-b1-u1-101", "户主"],  # another community's household
        ["丙", "13911110003", "", "ca-b1-u1", "户主"],      # a unit, not a household
    ]
    body = problem(upload(client, world, "residents", csv_bytes(rows)))
    assert codes(body) == {(3, "household_id", "import.unknown_household"),
                           (4, "household_id", "import.unknown_household")}
    persons = client.get("/api/v1/persons", params={"household_id": "ca-b1-u1-102"},
                         headers=auth(world.token(ADMIN))).json()
    assert persons["total"] == 1  # only the resident the world put there


@pytest.mark.parametrize(("role", "sheet"), [
    (Role.GRID_WORKER, "residents"),     # may create persons, but not import memberships
    (Role.PROPERTY_STAFF, "residents"),
    (Role.CITY_OPERATOR, "residents"),
    (Role.RESIDENT, "places"),
    (Role.DEPARTMENT_OFFICER, "places"),
])
def test_roles_that_may_not_import_get_403(client, world, role, sheet):
    rows = [RESIDENT_HEADER, ["甲", "13911110001", "", "ca-b1-u1-102", "户主"]] if sheet == "residents" \
        else THREE_GOOD_ONE_BAD[:2]
    problem(upload(client, world, sheet, csv_bytes(rows), role=role), 403)


def test_import_and_export_need_sign_in(client):
    files = {"file": ("x.csv", csv_bytes(THREE_GOOD_ONE_BAD[:2]), "text/csv")}
    problem(client.post("/api/v1/import/places", files=files), 401)
    problem(client.get("/api/v1/export/places.csv"), 401)


# -- the tree: parents earlier in the sheet -------------------------------------------------------------
def test_parents_may_be_defined_earlier_in_the_same_sheet_but_not_later(client, world):
    later = [
        PLACE_HEADER,
        ["ca-b6-u1-101", "household", "ca-b6-u1", "101"],
        ["ca-b6", "building", "ca-g2", "六号楼"],
        ["ca-b6-u1", "unit", "ca-b6", "一单元"],
    ]
    body = problem(upload(client, world, "places", csv_bytes(later)))
    assert codes(body) == {(2, "parent_id", "import.unknown_parent")}

    earlier = [later[0], later[2], later[3], later[1]]
    assert upload(client, world, "places", csv_bytes(earlier)).status_code == 200
    household = client.get("/api/v1/places/ca-b6-u1-101", headers=auth(world.token(ADMIN))).json()
    assert household["path"] == "/tc/tc-d1/tc-d1-s1/ca/ca-g2/ca-b6/ca-b6-u1/ca-b6-u1-101/"


def test_headers_in_either_language_any_order_and_lenient_values(client, world):
    rows = [
        ["序号", "name", "类型", "ID", "parent_id", "备注"],                  # row numbers, remarks ignored
        ["1", "七号楼", "楼", "ＣＡ-Ｂ7", "ca-g1", "东侧"],                  # full-width, upper case
        ["2", "一单元", "UNIT", "ca-b7-u1", "CA-B7", ""],
    ]
    result = upload(client, world, "places", csv_bytes(rows))
    assert result.status_code == 200, result.text
    assert place_exists(client, world, "ca-b7-u1")


# -- export, and export then import -------------------------------------------------------------------
def _build_grid(client: TestClient, world: World) -> None:
    """A grid with every kind of column filled, made through the API and both imports."""
    headers = auth(world.token(ADMIN))
    for body in (
        {"id": "ca-g9", "kind": "grid", "parent_id": "ca", "name": "九网格"},
        {"id": "ca-g9-b2", "kind": "building", "parent_id": "ca-g9",
         "name": '=HYPERLINK("http://evil.example","click")'},  # hostile, stored as text via the API
    ):
        assert client.post("/api/v1/places", json=body, headers=headers).status_code == 201
    places = [
        PLACES.headers,
        ["ca-g9-b1", "building", "ca-g9", "-1 号楼", "Building 1", "440305001001", "", "113.9213", "22.5216", "",
         "", "5200.5", '{"elevator": true, "地址": "深南大道 1 号"}'],
        ["ca-g9-b1-u1", "unit", "ca-g9-b1", "一单元"],
        ["ca-g9-b1-u1-101", "household", "ca-g9-b1-u1", "101 室", "", "", "", "", "", "", "1", "89.5"],
        ["ca-g9-b1-u1-102", "household", "ca-g9-b1-u1", "102 室", "", "", "", "", "", "", "1", "76"],
        ["ca-g9-gate", "facility", "ca-g9", "北门", "", "", "门岗", "113.92", "22.52"],
        ["ca-g9-lot", "facility", "ca-g9", "停车场", "", "", "parking_lot", "", "", json.dumps(
            {"type": "Point", "coordinates": [113.93, 22.53]})],
    ]
    assert upload(client, world, "places", csv_bytes(places)).status_code == 200
    residents = [
        RESIDENTS.headers,
        ["张三", "+86 138-0013-8000", VALID_ID, None, None, "ca-g9-b1-u1-101，ca-g9-b1-u1-102", "户主、租户",
         "2020-05-01", "独居老人 elderly"],
        ["李四", 13900000001, None, "男", "1980-02-03", "ca-g9-b1-u1-101", "家属", None, None],
    ]
    result = upload(client, world, "residents", xlsx_bytes(residents), "residents.xlsx")
    assert result.status_code == 200, result.text


def test_export_is_parents_first_escaped_against_formulas_and_imports_back_unchanged(client, world):
    _build_grid(client, world)
    places_csv = export(client, world, "places.csv", within="ca-g9")
    residents_xlsx = export(client, world, "residents.xlsx", within="ca-g9")
    assert places_csv[0] == PLACES.headers and residents_xlsx[0] == RESIDENTS.headers
    ids = [row[0] for row in places_csv[1:]]
    assert ids.index("ca-g9-b1") < ids.index("ca-g9-b1-u1") < ids.index("ca-g9-b1-u1-101")
    exported = by_key(places_csv, "id")
    assert exported["ca-g9-b2"]["name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert exported["ca-g9-b1"]["name"] == "'-1 号楼"
    assert exported["ca-g9-b1"]["area_m2"] == "5200.5" and exported["ca-g9-b1"]["code"] == "440305001001"
    assert json.loads(exported["ca-g9-b1"]["attributes"]) == {"elevator": True, "地址": "深南大道 1 号"}
    assert (exported["ca-g9-lot"]["longitude"], exported["ca-g9-lot"]["geometry"]) == ("113.93", None)
    people = by_key(residents_xlsx, "name")
    assert people["张三"]["household_id"] == "ca-g9-b1-u1-101,ca-g9-b1-u1-102"
    assert people["张三"]["role"] == "户主,租户" and people["张三"]["care_tags"] == "独居老人,老年人"
    assert people["张三"]["phone"] == "13800138000" and people["李四"]["phone"] == "13900000001"

    places_file = client.get("/api/v1/export/places.csv", params={"within": "ca-g9"}, headers=auth(world.token(ADMIN)))
    residents_file = client.get("/api/v1/export/residents.xlsx", params={"within": "ca-g9"},
                                headers=auth(world.token(ADMIN)))
    _delete_grid_contents(client, world)
    assert not place_exists(client, world, "ca-g9-b1")
    for sheet, response, name in (("places", places_file, "places.csv"), ("residents", residents_file, "r.xlsx")):
        result = upload(client, world, sheet, response.content, name)
        assert result.status_code == 200, result.text

    assert export(client, world, "places.csv", within="ca-g9") == places_csv
    again = export(client, world, "residents.xlsx", within="ca-g9")
    assert sorted(again[1:], key=str) == sorted(residents_xlsx[1:], key=str)
    stored = client.get("/api/v1/places/ca-g9-b2", headers=auth(world.token(ADMIN))).json()
    assert stored["name"] == '=HYPERLINK("http://evil.example","click")'  # the apostrophe came off again


def _delete_persons(client: TestClient, world: World) -> None:
    headers = auth(world.token(ADMIN))
    persons = client.get("/api/v1/persons", params={"within": "ca-g9", "limit": 100}, headers=headers).json()
    for person in persons["items"]:
        assert client.delete(f"/api/v1/persons/{person['id']}", headers=headers).status_code == 204


def _delete_grid_contents(client: TestClient, world: World) -> None:
    _delete_persons(client, world)
    headers = auth(world.token(ADMIN))
    found = client.get("/api/v1/places", params={"within": "ca-g9", "limit": 100}, headers=headers).json()
    for place in sorted(found["items"], key=lambda p: -len(p["path"])):
        assert client.delete(f"/api/v1/places/{place['id']}", headers=headers).status_code == 204


def test_place_export_covers_the_scope_but_not_the_enclosing_places(client, world):
    ids = [row[0] for row in export(client, world, "places.xlsx")[1:]]
    assert "ca" in ids and "ca-b1-u1-101" in ids and "ca-gate1" in ids
    assert not {"tc", "tc-d1", "tc-d1-s1", "cb"} & set(ids)  # readable for breadcrumbs, not exportable
    community = by_key(export(client, world, "places.csv", role=Role.PLATFORM_ADMIN, within="tc-d1-s1"), "id")["ca"]
    assert json.loads(community["geometry"]) == SQUARE and community["kind"] == "社区"


def test_residents_are_exported_in_full_for_roles_that_may_reveal_them_and_each_view_is_audited(client, world, ctx):
    rows = by_key(export(client, world, "residents.csv"), "name")
    assert set(rows) == {"王秀英", "王小明", "李建国", "张伟"}  # community ca only
    wang = rows["王秀英"]
    assert (wang["phone"], wang["id_number"], wang["birth_date"]) == ("13800001101", "110101194501011230",
                                                                       "1945-01-01")
    assert wang["care_tags"] == "独居老人" and wang["role"] == "户主"
    with ctx.db.session() as session:
        records = session.execute(select(AuditRecord).where(AuditRecord.actor_id == world.user_ids[ADMIN])).scalars()
        actions = [(r.action, r.details.get("via")) for r in records]
    assert actions.count(("person.reveal", "export")) == 4 and actions.count(("export.residents", None)) == 1


def test_residents_are_masked_for_roles_that_may_only_read_them_and_nothing_is_revealed(client, world, ctx):
    rows = export(client, world, "residents.xlsx", role=Role.CITY_OPERATOR)
    names = [row[0] for row in rows[1:]]
    assert names.count("王**") == 2 and "刘*" in names  # the whole city, masked
    wang = by_key([["phone/phone"] + rows[0]] + [[row[1], *row] for row in rows[1:]], "phone")["138****1101"]
    assert (wang["phone"], wang["id_number"], wang["birth_date"]) == ("138****1101", "1101**********1230", "1945")
    assert wang["care_tags"] is None  # the role may not see care tags
    with ctx.db.session() as session:
        actions = session.execute(select(AuditRecord.action)
                                  .where(AuditRecord.actor_id == world.user_ids[Role.CITY_OPERATOR])).scalars().all()
    assert "export.residents" in actions and "person.reveal" not in actions


def test_a_masked_export_does_not_import_as_if_it_were_real_data(client, world):
    masked = export(client, world, "residents.xlsx", role=Role.CITY_OPERATOR, within="ca-b1-u1-102")
    body = problem(upload(client, world, "residents", xlsx_bytes(masked), "masked.xlsx"))
    assert {(e["field"], e["code"]) for e in body["errors"]} >= {("name", "import.masked_value"),
                                                                  ("phone", "import.masked_value")}


def test_export_scope_follows_the_role(client, world):
    grid = by_key(export(client, world, "residents.csv", role=Role.GRID_WORKER), "name")
    assert set(grid) == {"王秀英", "王小明", "李建国"}  # grid ca-g1 only
    problem(client.get("/api/v1/export/places.csv", params={"within": "cb"}, headers=auth(world.token(ADMIN))), 404)
    problem(client.get("/api/v1/export/residents.csv", headers=auth(world.token(Role.SERVICE_PROVIDER))), 403)


# -- residents: values checked per row ------------------------------------------------------------------
def test_resident_rows_are_checked_field_by_field(client, world):
    rows = [
        RESIDENTS.headers,
        ["王**", "138****1101", None, None, None, "ca-b1-u1-102", None, None, None],
        ["钱七", "12345", "110101194501011231", "男", "2090-01-01", "ca-b1-u1-102", "房东", None, "富人"],
        ["孙八", None, float(110101194501011230), None, None, "ca-b1-u1-102,ca-b2-u1-201", "户主,租户,家属", None, None],
        ["周九", None, VALID_ID, None, None, "ca-b1-u1-102", None, None, None],
        ["吴十", None, VALID_ID, None, "1990-13-01", "ca-b1-u1-102", None, None, None],
        ["李建国", None, None, None, None, "ca-b1-u1-102", None, None, None],
    ]
    body = problem(upload(client, world, "residents", xlsx_bytes(rows), "r.xlsx"))
    assert codes(body) == {
        (2, "name", "import.masked_value"), (2, "phone", "import.masked_value"),
        (3, "phone", "import.bad_phone"), (3, "id_number", "import.bad_id_number_check"),
        (3, "birth_date", "import.future_date"), (3, "role", "import.bad_choice"),
        (3, "care_tags", "import.bad_choice"),
        (4, "id_number", "import.number_lost_digits"), (4, "role", "import.per_household"),
        (6, "id_number", "import.duplicate_person"), (6, "birth_date", "import.bad_date"),
        (7, "name", "import.already_member"),
    }


def test_importing_the_same_residents_twice_is_refused_the_second_time(client, world):
    rows = csv_bytes([RESIDENT_HEADER, ["赵六", "13912345678", VALID_ID, "ca-b1-u1-102", "租户"]])
    assert upload(client, world, "residents", rows).status_code == 200
    body = problem(upload(client, world, "residents", rows))
    assert codes(body) == {(2, "name", "import.already_member"), (2, "id_number", "import.exists")}
    assert "1101**********002X" in json.dumps(body, ensure_ascii=False)  # masked in the message
    assert VALID_ID not in json.dumps(body)


def test_a_successful_import_is_audited_once_where_the_community_can_read_it(client, world):
    rows = csv_bytes([RESIDENT_HEADER, ["赵六", "13912345678", "", "ca-b1-u1-102", "租户"],
                      ["钱七", "13912345679", "", "ca-b2-u1-201", "家属"]])
    assert upload(client, world, "residents", rows, "登记表.csv").status_code == 200
    records = client.get("/api/v1/audit", params={"action": "import.residents"},
                         headers=auth(world.token(ADMIN))).json()["items"]
    assert len(records) == 1
    assert records[0]["details"]["file"] == "登记表.csv" and records[0]["details"]["persons"] == 2
    per_person = client.get("/api/v1/audit", params={"action": "person.create", "actor_id": world.user_ids[ADMIN]},
                            headers=auth(world.token(ADMIN)))
    assert per_person.json()["total"] == 0  # one record for the import, not one per row


# -- files that are not what they claim ---------------------------------------------------------------
def _zip_with_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    return buffer.getvalue()


def _xlsx_with_formula() -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.append(PLACE_HEADER)
    workbook.active.append(["ca-b7", "building", "ca-g1", "=CONCAT(\"七\",\"号楼\")"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _too_many_rows() -> bytes:
    lines = ["编号/id,类型/kind,上级编号/parent_id,名称/name"]
    lines += [f"ca-x{i},household,ca-b1-u1,{i}" for i in range(MAX_ROWS + 1)]
    return ("\n".join(lines) + "\n").encode()


BAD_FILES = {
    "garbage as xlsx": (bytes(range(256)) * 40, "places.xlsx", None, "import.bad_file", "not an Excel .xlsx"),
    "zip that is no workbook": (_zip_with_text(), "places.xlsx", None, "import.bad_file", "not an Excel .xlsx"),
    "old xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "places.xls", None, "import.bad_file",
                "old .xls"),
    "latin-1 csv": ("id,kind,parent_id,name\nca-b7,building,ca-g1,Café\n".encode("latin-1"), "places.csv", None,
                    "import.bad_file", "not UTF-8"),
    "empty csv": (b"", "places.csv", None, "import.bad_file", "empty"),
    "empty xlsx": (b"", "places.xlsx", None, "import.bad_file", "empty"),
    "NUL in csv": (b"id,kind,parent_id,name\nca-b7,building,ca-g1,a\x00b\n", "places.csv", None,
                   "import.bad_file", "malformed"),
    "header only": (csv_bytes([PLACE_HEADER]), "places.csv", None, "import.no_rows", "no data rows"),
    "missing column": (csv_bytes([PLACE_HEADER[:3], ["ca-b7", "building", "ca-g1"]]), "places.csv", 1,
                       "import.missing_column", 'lacks the column "名称/name"'),
    "unknown column": (csv_bytes([PLACE_HEADER + ["phnoe"], ["ca-b7", "building", "ca-g1", "x", "1"]]),
                       "places.csv", 1, "import.unknown_column", '"phnoe"'),
    "too many rows": (_too_many_rows(), "places.csv", None, "import.too_many_rows", f"more than {MAX_ROWS}"),
    "formula in csv": (csv_bytes([PLACE_HEADER, ["ca-b7", "building", "ca-g1", "=1+1"]]), "places.csv", 2,
                       "import.formula", "formulas are not imported"),
    "formula in xlsx": (_xlsx_with_formula(), "places.xlsx", 2, "import.formula", "formulas are not imported"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_files_get_a_clear_422_never_a_crash(client, world, case):
    content, filename, row, code, text = BAD_FILES[case]
    body = problem(upload(client, world, "places", content, filename, headers={"Accept-Language": "en"}))
    assert [(e["row"], e["code"]) for e in body["errors"]][:1] == [(row, code)]
    assert text in body["errors"][0]["message"]
    assert text in body["detail"] or body["detail"].startswith("Nothing was imported")
    assert not place_exists(client, world, "ca-b7")


def test_utf16_text_from_excel_is_read(client, world):
    text = "\n".join("\t".join(row) for row in (PLACE_HEADER, ["ca-b7", "楼栋", "ca-g1", "七号楼"])) + "\n"
    result = upload(client, world, "places", text.encode("utf-16"), "places.txt")
    assert result.status_code == 200, result.text


# -- the catalogues -------------------------------------------------------------------------------------
def _catalogue(locale: str) -> dict[str, str]:
    path = Path(importer.__file__).parent.parent / "i18n" / f"{locale}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_both_catalogues_have_the_same_messages_with_the_same_placeholders():
    zh, en = (_catalogue(locale) for locale in LOCALES)
    assert zh.keys() == en.keys()
    for key in zh:
        assert set(re.findall(r"{(\w+)}", zh[key])) == set(re.findall(r"{(\w+)}", en[key])), key


def test_every_message_code_the_transfer_package_uses_is_in_the_catalogue():
    source = "".join(p.read_text(encoding="utf-8") for p in Path(importer.__file__).parent.glob("*.py"))
    used = set(re.findall(r'"((?:import|export)\.[a-z_]+)"', source)) - {"import.places", "import.residents"}
    assert used and used <= set(_catalogue("en"))


# -- the CLI ----------------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(ctx: AppContext, monkeypatch) -> Path:
    """The CLI reads the same database (and key) as the ``ctx`` fixture."""
    monkeypatch.setenv("CITYWEAVE_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("CITYWEAVE_DATABASE_URL", ctx.settings.effective_database_url)
    return ctx.settings.data_dir


def test_cli_import_prints_row_errors_exits_1_then_imports_and_exports(cli_env: Path, ctx: AppContext, tmp_path):
    from cityweave.cli.main import app

    runner = CliRunner()
    sheet = tmp_path / "places.csv"
    sheet.write_bytes(csv_bytes(THREE_GOOD_ONE_BAD))
    result = runner.invoke(app, ["import", "places", str(sheet), "--locale", "en", "--data-dir", str(cli_env)])
    assert result.exit_code == 1, result.output
    assert "rows with errors: 1" in result.output and "castle" in result.output
    with ctx.db.session() as session:
        assert session.get(Place, "ca-b7") is None

    sheet.write_bytes(csv_bytes(THREE_GOOD_ONE_BAD[:4]))
    result = runner.invoke(app, ["import", "places", str(sheet), "--dry-run", "--locale", "zh-CN",
                                 "--data-dir", str(cli_env)])
    assert result.exit_code == 0 and "试导入" in result.output
    with ctx.db.session() as session:
        assert session.get(Place, "ca-b7") is None
    result = runner.invoke(app, ["import", "places", str(sheet), "--locale", "zh-CN", "--data-dir", str(cli_env)])
    assert result.exit_code == 0, result.output
    assert "已导入 3 行" in result.output
    with ctx.db.session() as session:
        assert session.get(Place, "ca-b7-u1-101").path.endswith("/ca-b7/ca-b7-u1/ca-b7-u1-101/")

    out = tmp_path / "residents.xlsx"
    result = runner.invoke(app, ["export", "residents", str(out), "--within", "ca", "--data-dir", str(cli_env)])
    assert result.exit_code == 0, result.output
    names = {row[0] for row in table_of(out.read_bytes(), "x.xlsx")[1:]}
    assert names == {"王秀英", "王小明", "李建国", "张伟"}  # the platform sees everything unmasked
    result = runner.invoke(app, ["export", "places", str(tmp_path / "x.pdf"), "--data-dir", str(cli_env)])
    assert result.exit_code == 2
