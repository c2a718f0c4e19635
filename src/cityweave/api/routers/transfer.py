"""Spreadsheet import and export (filled in by the transfer module)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["import-export"])
