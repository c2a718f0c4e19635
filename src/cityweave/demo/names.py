"""Invented but realistic Chinese names: surnames by frequency, given names by generation.

Surname weights follow the national frequency ranking (per cent of the population, rounded),
nudged up for surnames common in Guangdong (陈, 黄, 林, 梁, 钟, 曾, 谢). Given names follow the
fashions of each generation, so that a grandmother is 秀英 and her granddaughter 梓涵: a list
of residents where everybody is called 子轩 would not look like a real community.
"""

from __future__ import annotations

import random

SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.2), ("张", 6.7), ("刘", 5.4), ("陈", 5.8), ("杨", 3.2), ("黄", 3.2),
    ("赵", 2.2), ("吴", 2.1), ("周", 2.0), ("徐", 1.6), ("孙", 1.5), ("马", 1.4), ("朱", 1.3),
    ("胡", 1.3), ("郭", 1.2), ("何", 1.3), ("林", 1.6), ("罗", 1.0), ("高", 0.9), ("郑", 0.9),
    ("梁", 1.0), ("谢", 0.9), ("宋", 0.7), ("唐", 0.7), ("许", 0.7), ("韩", 0.6), ("冯", 0.6),
    ("邓", 0.7), ("曹", 0.6), ("彭", 0.6), ("曾", 0.7), ("肖", 0.6), ("田", 0.5), ("董", 0.5),
    ("袁", 0.5), ("潘", 0.5), ("于", 0.5), ("蒋", 0.5), ("蔡", 0.5), ("余", 0.4), ("杜", 0.4),
    ("叶", 0.5), ("程", 0.4), ("苏", 0.4), ("魏", 0.4), ("吕", 0.4), ("丁", 0.4), ("任", 0.4),
    ("沈", 0.4), ("姚", 0.3), ("卢", 0.3), ("姜", 0.3), ("崔", 0.3), ("钟", 0.4), ("谭", 0.3),
    ("陆", 0.3), ("汪", 0.3), ("范", 0.3), ("金", 0.3), ("石", 0.2), ("廖", 0.3), ("贾", 0.2),
    ("夏", 0.2), ("韦", 0.2), ("付", 0.2), ("方", 0.2), ("白", 0.2), ("邹", 0.2), ("孟", 0.2),
    ("熊", 0.2), ("秦", 0.2), ("邱", 0.2), ("江", 0.2), ("尹", 0.2), ("薛", 0.2), ("闫", 0.2),
    ("段", 0.2), ("雷", 0.2), ("侯", 0.2), ("龙", 0.2), ("史", 0.1), ("陶", 0.1), ("黎", 0.2),
    ("贺", 0.1), ("顾", 0.1), ("毛", 0.1), ("郝", 0.1), ("龚", 0.1), ("邵", 0.1), ("万", 0.1),
    ("钱", 0.1), ("欧阳", 0.05), ("司马", 0.01),
)

# (born before this year, male names, female names), oldest generation first.
GIVEN_NAMES: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        1960,
        ("建国", "建华", "国强", "志强", "德明", "国华", "文华", "永福", "长林", "振华", "玉林",
         "福生", "保国", "庆丰", "树森", "炳坤", "明", "华", "荣", "生"),
        ("秀英", "桂英", "秀兰", "玉兰", "桂兰", "淑珍", "凤英", "玉珍", "秀珍", "丽华", "美华",
         "金凤", "月娥", "素梅", "淑芬", "玉梅", "英", "兰", "珍", "芬"),
    ),
    (
        1980,
        ("伟", "勇", "军", "斌", "涛", "强", "建军", "海涛", "志刚", "卫东", "红军", "建平",
         "晓东", "志明", "国平", "少华", "永强", "国栋", "剑", "波"),
        ("丽", "芳", "红", "艳", "敏", "静", "燕", "丽娟", "红梅", "春燕", "海燕", "秀梅",
         "晓红", "丽萍", "慧", "霞", "玲", "小琴", "美玲", "雪梅"),
    ),
    (
        2000,
        ("磊", "鹏", "浩", "杰", "超", "宇", "鑫", "俊杰", "志伟", "文博", "家豪", "子健",
         "建伟", "晓峰", "俊", "凯", "明轩", "嘉明", "泽华", "振宇"),
        ("婷", "丹", "倩", "雪", "颖", "琳", "晶", "佳", "婷婷", "丹丹", "晓敏", "雅琪",
         "思琪", "欣", "慧敏", "嘉欣", "诗雨", "晓雯", "文静", "紫薇"),
    ),
    (
        9999,
        ("浩然", "子轩", "梓轩", "宇轩", "俊熙", "皓轩", "一鸣", "子墨", "铭泽", "睿", "博文",
         "奕辰", "沐阳", "天佑", "嘉懿", "思远", "承泽", "煜城", "梓豪", "锦程"),
        ("欣怡", "梓涵", "子涵", "诗涵", "雨桐", "可馨", "一诺", "梓萱", "思彤", "若汐", "沐晨",
         "佳怡", "芷若", "依诺", "语桐", "心悦", "安琪", "梓琳", "晨曦", "语嫣"),
    ),
)

_SURNAME_TEXT = tuple(s for s, _ in SURNAMES)
_SURNAME_CUMULATIVE: tuple[float, ...] = tuple(
    sum(w for _, w in SURNAMES[: i + 1]) for i in range(len(SURNAMES))
)


def surname(rng: random.Random) -> str:
    return rng.choices(_SURNAME_TEXT, cum_weights=_SURNAME_CUMULATIVE)[0]


def given_name(rng: random.Random, gender: str, birth_year: int) -> str:
    for before, male, female in GIVEN_NAMES:
        if birth_year < before:
            return rng.choice(male if gender == "male" else female)
    raise AssertionError("the last generation covers every year")
