"""Pure-ASGI middleware: body size limits (413) and request ids, cheap enough for every request."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityweave.api.problems import problem_response


class BodyLimit:
    """Refuse bodies over the limit, whether announced by Content-Length or streamed in chunks.

    Upload routes (spreadsheet import) get the larger upload limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int, upload_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_prefixes = upload_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.max_upload_bytes if path.startswith(self.upload_prefixes) else self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send, limit)
                    return
        received = 0
        rejected = False

        async def limited_receive() -> Message:
            # Streamed bodies have no Content-Length: count as they arrive. Past the limit,
            # answer 413 ourselves and tell the app the client left, so it stops reading.
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    rejected = True
                    await self._reject(scope, receive, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:  # after a 413 the app's own answer is dropped
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(None, 413, "payload-too-large", f"The body may be at most {limit} bytes.")
        await response(scope, receive, send)


class RequestId:
    """Echo or create ``X-Request-ID`` so a person can quote it and a log line can be found."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"")
        request_id = incoming[:64] if incoming and incoming.isascii() else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id))
            await send(message)

        await self.app(scope, receive, send_with_id)


class RejectNulInUrl:
    """A NUL in the path or query string is refused before any handler sees it (see schema.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
        ):
            response = problem_response(None, 422, "validation-error", "The URL may not contain the NUL character.")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
