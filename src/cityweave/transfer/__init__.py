"""Spreadsheet import and export of places and residents (CSV and XLSX).

Communities keep their registers in spreadsheets; this package moves them in and out through
the same domain services as the API, so scope checks, encryption and the audit trail apply
unchanged. It never imports web code: the API router and the CLI are thin callers.

- :mod:`.templates`: the two sheet layouts, bilingual headers and value labels, templates.
- :mod:`.tables`: reading and writing the files themselves, with their limits and escaping.
- :mod:`.cells`: one row's cells as typed values; every problem recorded, none raised.
- :mod:`.importer`: validate every row first, then write all rows or none.
- :mod:`.exporter`: the caller's scope, in the template layout, masked where it must be.
"""
