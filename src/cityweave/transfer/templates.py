"""The two sheet layouts (places, residents): columns, bilingual headers, value labels, templates.

One layout serves the template, the importer and the exporter, so that a filled template and
an export both import. Headers are written bilingually (``名称/name``) and accepted in either
language; coded values (kinds, roles, care tags) are accepted as codes or Chinese labels and
exported in the reader's language.

Template example rows start with ``#``: the importer skips such rows, so a template can be
filled in without deleting the examples first.
"""

from __future__ import annotations

import enum
import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from cityweave.people.models import CareTagKind, MembershipRole
from cityweave.places.models import FacilityType, PlaceKind
from cityweave.transfer.tables import FileFormat, write_csv

MAX_ROWS = 20_000


class SheetKind(enum.StrEnum):
    PLACES = "places"
    RESIDENTS = "residents"


# -- coded values -----------------------------------------------------------------------------------
def normalise(text: str) -> str:
    """Fold what people type interchangeably: full-width forms, case, surrounding space."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


@dataclass(frozen=True)
class Choices:
    """A coded value: each code with its Chinese label first, then other spellings people use."""

    labels: Mapping[str, tuple[str, ...]]
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup = {}
        for code, names in self.labels.items():
            for name in (code, *names):
                lookup[normalise(name)] = code
        object.__setattr__(self, "_lookup", lookup)

    def parse(self, text: str) -> str | None:
        return self._lookup.get(normalise(text))

    def label(self, code: str, locale: str) -> str:
        return self.labels[code][0] if locale.startswith("zh") else code

    def listing(self, locale: str) -> str:
        return ", ".join(self.label(code, locale) for code in self.labels)


KIND = Choices({
    PlaceKind.CITY: ("城市", "市"),
    PlaceKind.DISTRICT: ("区", "区县", "县"),
    PlaceKind.STREET: ("街道", "镇", "乡镇"),
    PlaceKind.COMMUNITY: ("社区", "小区", "村"),
    PlaceKind.GRID: ("网格",),
    PlaceKind.BUILDING: ("楼栋", "楼", "楼宇"),
    PlaceKind.UNIT: ("单元",),
    PlaceKind.HOUSEHOLD: ("户", "房屋", "住户", "房间"),
    PlaceKind.FACILITY: ("设施",),
})
FACILITY = Choices({
    FacilityType.GATE: ("门岗", "大门", "出入口"),
    FacilityType.PARKING_LOT: ("停车场",),
    FacilityType.PARKING_SPACE: ("车位", "停车位"),
    FacilityType.PARCEL_LOCKER: ("快递柜", "智能快递柜"),
    FacilityType.CHARGING_PILE: ("充电桩",),
    FacilityType.STREET_LIGHT: ("路灯",),
    FacilityType.WASTE_BIN: ("垃圾桶", "垃圾箱"),
    FacilityType.CAMERA: ("摄像头", "监控"),
    FacilityType.KIOSK: ("自助终端", "自助机"),
})
ROLE = Choices({
    MembershipRole.OWNER: ("户主", "业主", "房主"),
    MembershipRole.TENANT: ("租户", "租客"),
    MembershipRole.FAMILY: ("家属", "家庭成员", "成员"),
})
CARE_TAG = Choices({
    CareTagKind.ELDERLY_ALONE: ("独居老人", "空巢老人"),
    CareTagKind.ELDERLY: ("老年人", "高龄老人"),
    CareTagKind.DISABLED: ("残疾人",),
    CareTagKind.MINOR: ("未成年人", "儿童"),
    CareTagKind.CHRONIC_ILLNESS: ("慢性病", "慢性病患者"),
    CareTagKind.LOW_INCOME: ("低收入", "低保"),
    CareTagKind.VETERAN: ("退役军人",),
    CareTagKind.PREGNANT: ("孕妇", "孕产妇"),
})
GENDER = Choices({"male": ("男", "m"), "female": ("女", "f"), "other": ("其他",)})

#: Separators accepted inside list cells (household ids, roles, care tags).
LIST_SEPARATORS = re.compile(r"[,，;；、\s]+")


# -- columns ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    help_zh: str
    help_en: str
    example: str = ""
    required: bool = False
    choices: Choices | None = None
    aliases: tuple[str, ...] = ()
    text_format: bool = False  # digits that must stay text in Excel (ID and phone numbers)

    @property
    def header(self) -> str:
        return f"{self.zh}/{self.key}"


@dataclass(frozen=True)
class Sheet:
    kind: SheetKind
    title: str
    columns: tuple[Column, ...]
    examples: tuple[tuple[str, ...], ...]
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Column] = {}
        for column in self.columns:
            for name in (column.key, column.zh, column.header, *column.aliases):
                by_name[_header_key(name)] = column
        object.__setattr__(self, "_by_name", by_name)

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    def match(self, header: str) -> Column | None:
        """The column a header names: ``名称``, ``name``, ``名称/name``, ``名称 (name)``, ``*名称``."""
        found = self._by_name.get(_header_key(header))
        if found is not None:
            return found
        parts = [p for p in re.split(r"[/()（）\[\]【】\s]+", normalise(header).replace("*", "")) if p]
        matches = {id(c): c for p in parts if (c := self._by_name.get(_header_key(p)))}
        return next(iter(matches.values())) if len(matches) == 1 else None


def _header_key(text: str) -> str:
    return re.sub(r"[\s*]+", "", normalise(text))


PLACES = Sheet(
    kind=SheetKind.PLACES,
    title="地点 places",
    columns=(
        Column("id", "编号", "唯一编号：小写字母、数字和“-”，如 yuhua-b03-u2-1801；导入后不能修改",
               "Unique id: lower-case letters, digits and '-', e.g. yuhua-b03-u2-1801; cannot change later",
               required=True),
        Column("kind", "类型", "城市、区、街道、社区、网格、楼栋、单元、户或设施",
               "city, district, street, community, grid, building, unit, household or facility",
               required=True, choices=KIND, aliases=("类别",)),
        Column("parent_id", "上级编号", "上级地点的编号：已有的，或本表前面行里的；只有城市不填",
               "Id of the place above: an existing one or one in an earlier row; empty only for a city",
               aliases=("上级", "parent")),
        Column("name", "名称", "名称，最多 200 字", "Name, at most 200 characters", required=True),
        Column("name_en", "英文名称", "英文名称（可不填）", "English name (optional)"),
        Column("code", "代码", "官方代码，如 12 位统计用区划代码（可不填）",
               "Official code, e.g. the 12-digit administrative division code (optional)"),
        Column("facility_type", "设施类型", "仅设施必填：门岗、停车场、车位、快递柜、充电桩、路灯、垃圾桶、摄像头、自助终端",
               "Facilities only: gate, parking_lot, parking_space, parcel_locker, charging_pile, "
               "street_light, waste_bin, camera, kiosk", choices=FACILITY),
        Column("longitude", "经度", "楼栋和设施的位置（WGS84 经度）", "Location of buildings and facilities (WGS84)",
               aliases=("lng", "lon")),
        Column("latitude", "纬度", "楼栋和设施的位置（WGS84 纬度）", "Location of buildings and facilities (WGS84)",
               aliases=("lat",)),
        Column("geometry", "边界", "城市到网格的边界：GeoJSON Polygon（可不填）",
               "Outline of cities to grids: a GeoJSON Polygon (optional)", aliases=("geojson",)),
        Column("floor", "楼层", "所在楼层，整数（可不填）", "Floor number, a whole number (optional)"),
        Column("area_m2", "面积", "面积，平方米（可不填）", "Area in square metres (optional)", aliases=("面积m2",)),
        Column("attributes", "其他属性", "其他属性：JSON 对象，如 {\"elevator\": true}（可不填）",
               "Other attributes: a JSON object, e.g. {\"elevator\": true} (optional)", aliases=("属性",)),
    ),
    examples=(
        ("#yuhua-b03", "楼栋", "yuhua-g1", "3 号楼", "Building 3", "", "", "113.9213", "22.5216", "", "",
         "", '{"elevator": true}'),
        ("#yuhua-b03-u2-1801", "户", "yuhua-b03-u2", "1801 室", "Room 1801", "", "", "", "", "", "18",
         "89.5", ""),
    ),
)

RESIDENTS = Sheet(
    kind=SheetKind.RESIDENTS,
    title="居民 residents",
    columns=(
        Column("name", "姓名", "姓名，最多 100 字", "Full name, at most 100 characters", required=True),
        Column("phone", "电话", "手机号，或带区号的固定电话（可不填）", "Mobile, or landline with area code (optional)",
               aliases=("手机", "手机号", "联系电话"), text_format=True),
        Column("id_number", "身份证号", "18 位居民身份证号（可不填）；请设为文本格式",
               "18-character resident ID-card number (optional); keep the column as text",
               aliases=("身份证", "身份证号码", "证件号码"), text_format=True),
        Column("gender", "性别", "男、女或其他；不填时按身份证号", "male, female or other; from the ID number if empty",
               choices=GENDER),
        Column("birth_date", "出生日期", "YYYY-MM-DD；不填时按身份证号", "YYYY-MM-DD; from the ID number if empty",
               aliases=("生日",)),
        Column("household_id", "户编号", "所住户的地点编号；多户用逗号分隔",
               "Place id of the household; several separated by commas", required=True,
               aliases=("户", "房屋编号")),
        Column("role", "关系", "户主、租户或家属（默认家属）；每户一个，或一个用于全部",
               "owner, tenant or family (default family); one per household, or one for all",
               choices=ROLE, aliases=("与户主关系", "身份")),
        Column("since", "入住日期", "YYYY-MM-DD（可不填）；每户一个，或一个用于全部",
               "YYYY-MM-DD (optional); one per household, or one for all"),
        Column("care_tags", "关怀标签", "逗号分隔：独居老人、老年人、残疾人、未成年人、慢性病、低收入、退役军人、孕妇",
               "Comma separated: elderly_alone, elderly, disabled, minor, chronic_illness, low_income, "
               "veteran, pregnant", choices=CARE_TAG, aliases=("关怀对象", "标签")),
    ),
    examples=(
        ("#张三", "13800138000", "11010519491231002X", "", "", "yuhua-b03-u2-1801", "户主", "2020-05-01",
         "独居老人,老年人"),
    ),
)

SHEETS: dict[SheetKind, Sheet] = {SheetKind.PLACES: PLACES, SheetKind.RESIDENTS: RESIDENTS}

HELP_TITLE = "说明 Help"  # Excel forbids '/' in sheet names
GENERAL_HELP: tuple[tuple[str, str], ...] = (
    ("以 # 开头的行不会导入（如示例行），空行也会跳过。",
     "Rows whose first cell starts with # are skipped (like the example rows), and so are empty rows."),
    ("表头可写中文、英文或“中文/英文”，列的顺序随意。",
     "Headers may be Chinese, English or both (中文/english); columns may come in any order."),
    ("全部行无误才会导入：只要有一处错误，就不写入任何数据，并逐行列出错误。",
     "All or nothing: if any row has an error, nothing is written and every error is listed by row."),
    (f"每个文件最多 {MAX_ROWS} 行数据。", f"At most {MAX_ROWS} data rows per file."),
    ("身份证号和电话列请设为“文本”格式，否则 Excel 会丢失位数。",
     "Format ID-card and phone columns as Text, or Excel drops digits."),
    ("不要使用公式，请粘贴数值。导出文件中以 = + - @ 开头的内容前加了 '，导入时会自动去掉。",
     ("No formulas: paste values. Exported cells starting with = + - @ get a leading ', "
      "which import removes again.")),
    ("CSV 文件请用 UTF-8 编码保存（Excel：“CSV UTF-8（逗号分隔）”）。",
     "Save CSV files as UTF-8 (Excel: \"CSV UTF-8 (Comma delimited)\")."),
)


def help_rows(sheet: Sheet) -> list[list[str]]:
    """The "说明 Help" sheet: one line per column, then the general rules, in both languages."""
    rows = [["列 Column", "必填 Required", "说明", "Description", "示例 Example"]]
    example = sheet.examples[0]
    for i, column in enumerate(sheet.columns):
        rows.append([column.header, "是 yes" if column.required else "", column.help_zh, column.help_en,
                     example[i].lstrip("#")])
    rows.append([])
    rows.extend(["", "", zh, en, ""] for zh, en in GENERAL_HELP)
    return rows


# -- templates --------------------------------------------------------------------------------------
def build_template(kind: SheetKind, fmt: FileFormat) -> bytes:
    sheet = SHEETS[kind]
    if fmt is FileFormat.CSV:
        return write_csv(sheet.headers, (), comments=sheet.examples)
    return _xlsx_template(sheet)


def _xlsx_template(sheet: Sheet) -> bytes:
    """Unlike exports, templates are tiny, so a full workbook can carry styles and drop-downs."""
    workbook = Workbook()
    data = workbook.active
    data.title = sheet.title
    data.append(sheet.headers)
    for example in sheet.examples:
        data.append(list(example))
    bold, example_font = Font(bold=True), Font(italic=True, color="808080")
    for cell in data[1]:
        cell.font = bold
    for row in data.iter_rows(min_row=2, max_row=1 + len(sheet.examples)):
        for cell in row:
            cell.font = example_font
    data.freeze_panes = "A2"
    for index, column in enumerate(sheet.columns, start=1):
        letter = get_column_letter(index)
        data.column_dimensions[letter].width = max(12, len(column.header) + 6)
        if column.text_format:
            # A column style reaches the cells people type later: Excel keeps all 18 digits.
            data.column_dimensions[letter].number_format = "@"
        if column.choices is not None and column.key != "care_tags":  # care tags are lists
            _add_drop_down(data, letter, column.choices)
    _append_help(workbook, sheet)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _add_drop_down(sheet: Worksheet, letter: str, choices: Choices) -> None:
    # Offered, not enforced: people paste codes or other spellings, and the importer accepts them.
    values = ",".join(choices.labels[code][0] for code in choices.labels)
    validation = DataValidation(type="list", formula1=f'"{values}"', allow_blank=True, showErrorMessage=False)
    sheet.add_data_validation(validation)
    validation.add(f"{letter}2:{letter}{MAX_ROWS + 1}")


def _append_help(workbook: Workbook, sheet: Sheet) -> None:
    help_sheet = workbook.create_sheet(HELP_TITLE)
    for row in help_rows(sheet):
        help_sheet.append(row)
    for cell in help_sheet[1]:
        cell.font = Font(bold=True)
    for letter, width in zip("ABCDE", (22, 12, 50, 60, 24), strict=True):
        help_sheet.column_dimensions[letter].width = width
