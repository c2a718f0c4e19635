"""The web pages: a staff console and a resident home, server-rendered (Jinja2 + htmx).

An edge adapter like ``api/``: pages call the domain services with the signed-in person's
``Call``; nothing here holds business rules. Browser sign-ins are cookie sessions (tokens of
kind ``session``), every form carries a CSRF token, every page a Content-Security-Policy that
allows only our own files, and every string goes through the gettext catalogues in
``web/locale`` (zh-CN by default, English).
"""
