"""The LRS's typed errors; each carries the HTTP status the xAPI specification assigns to it."""

from __future__ import annotations

from trm_modules.errors import TRMError


class XapiError(TRMError):
    """A request the LRS refuses; ``pointer`` locates the fault (JSON pointer into the body, or ``?param``)."""

    status = 400
    slug = "xapi-bad-request"
    title = "Bad xAPI request"

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer


class StatementInvalid(XapiError):
    """A statement breaks the xAPI data model."""

    slug = "invalid-statement"
    title = "Invalid xAPI statement"


class ParameterInvalid(XapiError):
    """A query parameter or header is missing, unknown or malformed."""

    slug = "invalid-parameter"
    title = "Invalid xAPI request parameter"


class StatementConflict(XapiError):
    """A statement id is already stored with different content."""

    status = 409
    slug = "statement-conflict"
    title = "Statement id conflict"


class DocumentConflict(XapiError):
    """A document write needs ``If-Match`` / ``If-None-Match`` because the document exists."""

    status = 409
    slug = "document-conflict"
    title = "Concurrent document write"


class PreconditionFailed(XapiError):
    """``If-Match`` / ``If-None-Match`` does not hold for the stored document."""

    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class NotFound(XapiError):
    """No statement / document / activity answers the request."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Forbidden(XapiError):
    """The credentials may not do this."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class Unauthorized(XapiError):
    """No credentials, or a token the server does not know."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class StoreAway(XapiError):
    """The store's database cannot be reached: nothing was stored."""

    status = 503
    slug = "store-unavailable"
    title = "The store cannot be reached"


class InternalError(XapiError):
    """The LRS failed while answering (logged on the server)."""

    status = 500
    slug = "internal-error"
    title = "Internal server error"
