"""The LRS over HTTP: ``/xapi/…`` resources as an ``APIRouter`` (mounted through ``trm_register_routes``).

Each route is a thin shell: it reads the request into (method, parameters, headers, body), and
``LrsHttp.handle`` answers it with the library calls of ``statements.py`` / ``documents.py``. Every
response, errors included, carries ``X-Experience-API-Version`` and, for an allowed ``Origin``, the
CORS headers; errors are problem documents (RFC 9457) naming what was wrong and where.
The alternate request syntax (``POST …?method=PUT`` with a form body, for browsers that cannot
send custom headers cross-origin) is unwrapped before dispatch, so every resource supports it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError

from trm_modules.server.auth import bearer_or_basic_secret, checked_by_handler
from trm_modules.store import StoreError

from .courses import CourseScope, scope_for
from .documents import DocumentKey, DocumentStore, Preconditions, is_json_type
from .errors import Forbidden, InternalError, ParameterInvalid, StoreAway, Unauthorized, XapiError
from .identity import agent_key, in_format, statement_index
from .multipart import read_statement_parts, write_parts
from .statements import StatementQuery, StatementStore
from .validation import StatementInvalid, check_actor, check_iri, check_timestamp, check_uuid, parse_timestamp

log = logging.getLogger("trm_adapters.lrs")

XAPI_VERSION = "1.0.3"
#: What About reports: the versions this LRS implements that xAPI clients (tincan among them) know.
ABOUT_VERSIONS = ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
ACCEPTED_VERSION = re.compile(r"^(1\.0(\.\d+)?|2\.0(\.\d+)?)$")
PROBLEM_TYPE_BASE = "tag:trm-modules,2025:problems/"
WRITE_SCOPES = ("feedback", "admin")
#: Scopes that may read (GET / HEAD) the LRS: the writers, and ``read`` (reports).
READ_SCOPES = WRITE_SCOPES + ("read",)
ALTERNATE_HEADERS = (
    "authorization",
    "x-experience-api-version",
    "content-type",
    "content-length",
    "if-match",
    "if-none-match",
)
EXPOSED_HEADERS = "ETag, Last-Modified, X-Experience-API-Version, X-Experience-API-Consistent-Through"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Experience-API-Version, If-Match, If-None-Match"
STATEMENT_PARAMS = {
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
    "more",
}
SINGLE_STATEMENT_PARAMS = {"statementId", "voidedStatementId", "format", "attachments"}

#: resource path (under /xapi) → methods it answers
RESOURCES: dict[str, tuple[str, ...]] = {
    "statements": ("GET", "HEAD", "POST", "PUT"),
    "activities/state": ("GET", "HEAD", "PUT", "POST", "DELETE"),
    "activities/profile": ("GET", "HEAD", "PUT", "POST", "DELETE"),
    "agents/profile": ("GET", "HEAD", "PUT", "POST", "DELETE"),
    "activities": ("GET", "HEAD"),
    "agents": ("GET", "HEAD"),
    "about": ("GET", "HEAD"),
}


@dataclass
class LrsSettings:
    """``cors_origins``: origins whose browser content may call the LRS (``*``: any; empty: none).
    ``authority_home``: the account homePage of the ``authority`` the LRS sets (the server's public URL)."""

    cors_origins: tuple[str, ...] = ("*",)
    authority_home: str = "http://127.0.0.1:8000"


@dataclass
class XapiRequest:
    method: str
    resource: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    authority: dict[str, Any] | None = None
    scope: CourseScope | None = None  # the courses of a limited token (None: every course)


@dataclass
class XapiReply:
    status: int = 200
    content: bytes = b""
    media_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document: Any, status: int = 200, headers: dict[str, str] | None = None) -> "XapiReply":
        return cls(
            status, json.dumps(document, separators=(",", ":")).encode(), "application/json", dict(headers or {})
        )


def response_version(asked: str | None) -> str:
    """The version a response names: 2.0.0 to a 2.0 client, else 1.0.3 (the 1.0 line this LRS implements)."""
    return "2.0.0" if asked and asked.strip().startswith("2.") else XAPI_VERSION


def consistent_through(statements: StatementStore) -> str:
    """X-Experience-API-Consistent-Through (milliseconds: what JavaScript's Date reads)."""
    return statements.latest_stored().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


class LrsHttp:
    """Answers xAPI requests with a statement store and a document store.

    ``verify_token(secret) -> (token id, name, scopes[, courses]) | None`` checks credentials (``courses``:
    the courses a limited token may see, None for every course; ``courses.CourseScope`` applies them);
    ``on_stored(statements)`` is told about every statement a request stored or repeated (feedback
    bridge; a repeat lets a client's retry complete what a failed request left undone).
    """

    def __init__(
        self,
        statements: StatementStore,
        documents: DocumentStore,
        settings: LrsSettings,
        verify_token: Callable[[str], tuple[Any, ...] | None],
        on_stored: Callable[[list[dict[str, Any]]], Any] | None = None,
    ) -> None:
        self.statements = statements
        self.documents = documents
        self.settings = settings
        self.verify_token = verify_token
        self.on_stored = on_stored or (lambda statements: None)

    # --------------------------------------------------------------------------------------- entry
    def handle(self, request: XapiRequest) -> XapiReply:
        """Answer one request (already unwrapped from the alternate syntax)."""
        if request.resource != "about":
            self._check_version(request.headers.get("x-experience-api-version"))
            request.authority, request.scope = self._authenticate(
                request.headers.get("authorization"), request.method in ("GET", "HEAD")
            )
            if request.scope is not None and request.resource != "statements":
                raise Forbidden(
                    f"/{request.resource} is not kept by course; a token limited to the course(s) "
                    f"{request.scope.describe()} may use /statements only"
                )
        handler = getattr(self, "_" + request.resource.replace("/", "_"))
        reply = handler(request)
        if request.method == "HEAD":
            reply.content = b""
        return reply

    @staticmethod
    def _check_version(value: str | None) -> None:
        if not value:
            raise ParameterInvalid(
                "the X-Experience-API-Version header is required (e.g. 1.0.3)", "X-Experience-API-Version"
            )
        if not ACCEPTED_VERSION.match(value.strip()):
            raise ParameterInvalid(
                f"xAPI version {value!r} is not supported; send 1.0.x (or 2.0.x)", "X-Experience-API-Version"
            )

    def _authenticate(self, header: str | None, reading: bool) -> tuple[dict[str, Any], CourseScope | None]:
        secret = bearer_or_basic_secret(header)
        if secret is None:
            raise Unauthorized(
                "the LRS needs credentials: Basic auth with an API token as the password "
                "(`trm token create --scope feedback`), or Authorization: Bearer <token>"
            )
        found = self.verify_token(secret)
        if found is None:
            raise Unauthorized("the token is unknown or revoked")
        token_id, name, scopes = found[:3]
        courses = found[3] if len(found) > 3 else None
        if not set(scopes) & set(READ_SCOPES if reading else WRITE_SCOPES):
            needed = "'feedback' or 'read'" if reading else "'feedback'"
            raise Forbidden(f"the LRS needs a token with the {needed} scope; this one has {', '.join(scopes)}")
        authority = {
            "objectType": "Agent",
            "name": name,
            "account": {"homePage": self.settings.authority_home.rstrip("/"), "name": token_id},
        }
        return authority, scope_for(courses, self.settings.authority_home, self.statements.engine)

    def _check_courses(self, request: XapiRequest, statements: list[Any]) -> None:
        """Refuse (403) a write by a limited token unless every statement is of its courses."""
        scope = request.scope
        if scope is None:
            return
        for index, statement in enumerate(statements):
            if not isinstance(statement, dict) or not scope.allows(statement, self.statements.stored_any):
                where = f" (statement {index})" if len(statements) > 1 else ""
                raise Forbidden(
                    f"a token limited to the course(s) {scope.describe()} stores statements of those "
                    f"courses only{where}: name the course as a contextActivities grouping activity "
                    f"({scope.iris[0]}), or refer to a solve recorded in it"
                )

    # ---------------------------------------------------------------------------------- statements
    def _statements(self, request: XapiRequest) -> XapiReply:
        if request.method in ("GET", "HEAD"):
            return self._get_statements(request)
        params = request.params
        content_type = request.headers.get("content-type", "application/json")
        if content_type.lower().startswith("multipart/mixed"):
            document, attachments = read_statement_parts(request.body, content_type)
        elif content_type.split(";")[0].strip().lower() in ("application/json", ""):
            document, attachments = _json_body(request.body), []
        else:
            raise ParameterInvalid(
                f"statements are sent as application/json or multipart/mixed, not {content_type}", "Content-Type"
            )
        if request.method == "PUT":
            unknown = set(params) - {"statementId"}
            if unknown:
                raise ParameterInvalid(f"PUT /statements takes only statementId, not {sorted(unknown)}", "?")
            statement_id = params.get("statementId")
            if not statement_id:
                raise ParameterInvalid("PUT /statements needs the statementId parameter", "?statementId")
            check_uuid(statement_id, "?statementId", "statementId")
            if not isinstance(document, dict):
                raise StatementInvalid("PUT /statements takes one statement (a JSON object)", "")
            self._check_courses(request, [document])
            _, fresh = self.statements.store(
                [document], request.authority or {}, attachments, statement_id=statement_id, batch=False
            )
            self.on_stored(fresh)
            return XapiReply(204)
        if params:
            raise ParameterInvalid(f"POST /statements takes no parameters, not {sorted(params)}", "?")
        batch = document if isinstance(document, list) else [document]
        self._check_courses(request, batch)
        ids, fresh = self.statements.store(
            batch, request.authority or {}, attachments, batch=isinstance(document, list)
        )
        self.on_stored(fresh)
        return XapiReply.json(ids)

    def _get_statements(self, request: XapiRequest) -> XapiReply:
        params = request.params
        unknown = set(params) - STATEMENT_PARAMS
        if unknown:
            raise ParameterInvalid(f"GET /statements has no parameter {sorted(unknown)[0]!r}", f"?{sorted(unknown)[0]}")
        fmt = params.get("format", "exact")
        if fmt not in ("exact", "ids", "canonical"):
            raise ParameterInvalid(f"format must be exact, ids or canonical, not {fmt!r}", "?format")
        with_attachments = _boolean(params, "attachments")
        languages = _languages(request.headers.get("accept-language", ""))
        consistent: dict[str, str] = {}
        single = [p for p in ("statementId", "voidedStatementId") if p in params]
        if single:
            if len(single) > 1 or set(params) - SINGLE_STATEMENT_PARAMS:
                raise ParameterInvalid(f"{single[0]} can be combined only with format and attachments", f"?{single[0]}")
            check_uuid(params[single[0]], f"?{single[0]}", single[0])
            statement, _ = self.statements.get(params[single[0]], voided=single[0] == "voidedStatementId")
            if request.scope is not None and not request.scope.allows(statement, self.statements.stored_any):
                raise Forbidden(
                    f"statement {params[single[0]]} is not of the course(s) {request.scope.describe()} "
                    "this token is limited to"
                )
            return self._statement_reply(
                [statement],
                statement,
                fmt,
                languages,
                with_attachments,
                {**consistent, "Last-Modified": http_date(_stored(statement))},
            )
        if "more" in params:
            if len(params) > 1:
                raise ParameterInvalid("more continues a query: send it alone", "?more")
            query = StatementQuery.from_cursor(params["more"])
        else:
            query = _statement_query(params)
            query.format, query.attachments = fmt, with_attachments
        fmt, with_attachments = query.format, query.attachments
        page = self.statements.query(query, request.scope)
        document: dict[str, Any] = {
            "statements": page.statements,
            "more": f"{request.path}?more={page.more}" if page.more else "",
        }
        last = max((_stored(s) for s in page.statements), default=datetime.now(timezone.utc))
        return self._statement_reply(
            page.statements,
            document,
            fmt,
            languages,
            with_attachments,
            {**consistent, "Last-Modified": http_date(last)},
        )

    def _statement_reply(
        self,
        statements: list[dict[str, Any]],
        document: Any,
        fmt: str,
        languages: list[str],
        with_attachments: bool,
        headers: dict[str, str],
    ) -> XapiReply:
        if fmt != "exact":
            definitions = self.statements.definitions(_activity_ids(statements)) if fmt == "canonical" else {}
            formatted = [in_format(s, fmt, languages=languages, definitions=definitions) for s in statements]
            document = (
                {**document, "statements": formatted}
                if isinstance(document, dict) and "statements" in document
                else formatted[0]
            )
        if with_attachments:
            body, media_type = write_parts(document, self.statements.attachments_of(statements))
            return XapiReply(200, body, media_type, headers)
        return XapiReply.json(document, headers=headers)

    # ---------------------------------------------------------------------------------- documents
    def _activities_state(self, request: XapiRequest) -> XapiReply:
        params = request.params
        _allow(params, {"activityId", "agent", "registration", "stateId", "since"})
        activity = check_iri(_required(params, "activityId"), "?activityId", "activityId")
        agent = _agent_param(params)
        registration = params.get("registration", "")
        if registration:
            check_uuid(registration, "?registration", "registration")
        key = DocumentKey("state", activity, agent, registration.lower(), params.get("stateId"))
        return self._document(request, key, "stateId", profile=False)

    def _activities_profile(self, request: XapiRequest) -> XapiReply:
        params = request.params
        _allow(params, {"activityId", "profileId", "since"})
        activity = check_iri(_required(params, "activityId"), "?activityId", "activityId")
        key = DocumentKey("activity-profile", activity, document_id=params.get("profileId"))
        return self._document(request, key, "profileId", profile=True)

    def _agents_profile(self, request: XapiRequest) -> XapiReply:
        params = request.params
        _allow(params, {"agent", "profileId", "since"})
        key = DocumentKey("agent-profile", agent_key=_agent_param(params), document_id=params.get("profileId"))
        return self._document(request, key, "profileId", profile=True)

    def _document(self, request: XapiRequest, key: DocumentKey, id_param: str, *, profile: bool) -> XapiReply:
        method = request.method
        preconditions = Preconditions(request.headers.get("if-match"), request.headers.get("if-none-match"))
        if "since" in request.params and (method not in ("GET", "HEAD") or key.document_id is not None):
            raise ParameterInvalid(f"since applies only to listing document ids (GET without {id_param})", "?since")
        if method in ("GET", "HEAD"):
            if key.document_id is None:
                since = request.params.get("since")
                moment = check_timestamp(since, "?since", "since") if since else None
                return XapiReply.json(self.documents.ids(key, moment))
            document = self.documents.get(key)
            return XapiReply(
                200,
                document.content,
                document.content_type,
                {"ETag": f'"{document.etag}"', "Last-Modified": http_date(document.updated)},
            )
        if method == "DELETE":
            if key.document_id is None and profile:
                raise ParameterInvalid(f"DELETE needs {id_param}", f"?{id_param}")
            self.documents.delete(key, preconditions)
            return XapiReply(204)
        if key.document_id is None:
            raise ParameterInvalid(f"{method} needs {id_param}", f"?{id_param}")
        content_type = request.headers.get("content-type") or "application/octet-stream"
        if is_json_type(content_type):
            try:
                json.loads(request.body)
            except ValueError as exc:
                raise ParameterInvalid(f"the document is declared application/json but is not JSON ({exc})", "")
        # xAPI 1.0.3 guards profile writes; 2.0 also refuses a blind overwrite of a state document
        xapi_2 = request.headers.get("x-experience-api-version", "").startswith("2.")
        document = self.documents.put(
            key,
            request.body,
            content_type,
            preconditions,
            merge=method == "POST",
            blind_overwrite=not (profile or xapi_2),
            blind_create=not profile,
        )
        return XapiReply(204, headers={"ETag": f'"{document.etag}"'})

    # ---------------------------------------------------------------------------- agents, activities
    def _agents(self, request: XapiRequest) -> XapiReply:
        _allow(request.params, {"agent"})
        agent = _agent_json(request.params)
        person: dict[str, Any] = {"objectType": "Person"}
        if agent.get("name"):
            person["name"] = [agent["name"]]
        for ifi in ("mbox", "mbox_sha1sum", "openid", "account"):
            if ifi in agent:
                person[ifi] = [agent[ifi]]
        return XapiReply.json(person)

    def _activities(self, request: XapiRequest) -> XapiReply:
        _allow(request.params, {"activityId"})
        activity_id = check_iri(_required(request.params, "activityId"), "?activityId", "activityId")
        return XapiReply.json(self.statements.activity(activity_id))  # an Activity object even when unknown

    def _about(self, request: XapiRequest) -> XapiReply:
        _allow(request.params, set())
        return XapiReply.json({"version": ABOUT_VERSIONS, "extensions": {}})


# ---------------------------------------------------------------------------------------- parameters
def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise StatementInvalid(f"the body is not JSON: {exc}", "") from None


def _required(params: dict[str, str], name: str) -> str:
    if not params.get(name):
        raise ParameterInvalid(f"the parameter {name} is required", f"?{name}")
    return params[name]


def _allow(params: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ParameterInvalid(
            f"unknown parameter {unknown[0]!r} (allowed: {', '.join(sorted(allowed)) or 'none'})", f"?{unknown[0]}"
        )


def _agent_json(params: dict[str, str], name: str = "agent") -> dict[str, Any]:
    raw = _required(params, name)
    try:
        agent = json.loads(raw)
    except ValueError as exc:
        raise ParameterInvalid(f"{name} must be an Agent as JSON ({exc})", f"?{name}") from None
    try:
        check_actor(agent, f"?{name}", name)
    except StatementInvalid as exc:
        raise ParameterInvalid(exc.message, f"?{name}") from None
    return agent


def _agent_param(params: dict[str, str]) -> str:
    key = agent_key(_agent_json(params))
    if key is None:
        raise ParameterInvalid("agent must be an Agent or an identified Group", "?agent")
    return key


def _boolean(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise ParameterInvalid(f"{name} must be true or false, not {params[name]!r}", f"?{name}")
    return value == "true"


def _statement_query(params: dict[str, str]) -> StatementQuery:
    query = StatementQuery()
    if "agent" in params:
        query.agent = _agent_param(params)
    if "verb" in params:
        query.verb = check_iri(params["verb"], "?verb", "verb")
    if "activity" in params:
        query.activity = check_iri(params["activity"], "?activity", "activity")
    if "registration" in params:
        query.registration = check_uuid(params["registration"], "?registration", "registration")
    query.related_activities = _boolean(params, "related_activities")
    query.related_agents = _boolean(params, "related_agents")
    query.ascending = _boolean(params, "ascending")
    for name in ("since", "until"):
        if name in params:
            try:
                setattr(query, name, check_timestamp(params[name], f"?{name}", name))
            except StatementInvalid as exc:
                raise ParameterInvalid(exc.message, f"?{name}") from None
    if "limit" in params:
        if not params["limit"].isdigit():
            raise ParameterInvalid(f"limit must be a non-negative integer, not {params['limit']!r}", "?limit")
        query.limit = int(params["limit"])
    return query


def _stored(statement: dict[str, Any]) -> datetime:
    return parse_timestamp(statement["stored"])


def _activity_ids(statements: Sequence[dict[str, Any]]) -> set[str]:
    """Every activity the statements mention (object, context activities, sub-statements)."""
    return {activity for statement in statements for activity, _ in statement_index(statement)[1]}


def _languages(header: str) -> list[str]:
    ranked = []
    for index, item in enumerate(header.split(",")):
        tag, _, weight = item.strip().partition(";q=")
        if tag and tag != "*":
            try:
                ranked.append((-float(weight or 1), index, tag.strip()))
            except ValueError:
                continue
    return [tag for _, _, tag in sorted(ranked)]


# --------------------------------------------------------------------------------------------- router
def _problem(error: XapiError, path: str) -> XapiReply:
    document = {
        "type": PROBLEM_TYPE_BASE + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": error.message,
        "instance": path,
    }
    if error.pointer:
        document["errors"] = [{"detail": error.message, "pointer": error.pointer}]
    reply = XapiReply.json(document, error.status)
    reply.media_type = "application/problem+json"
    if error.status == 401:
        reply.headers["WWW-Authenticate"] = 'Basic realm="trm-modules xAPI"'
    return reply


def _cors_headers(settings: LrsSettings, origin: str | None) -> dict[str, str]:
    if not origin or not settings.cors_origins:
        return {}
    if "*" in settings.cors_origins:
        allowed = "*"
    elif origin in settings.cors_origins:
        allowed = origin
    else:
        return {}
    headers = {"Access-Control-Allow-Origin": allowed, "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    if allowed != "*":
        headers["Vary"] = "Origin"
    return headers


async def _read_request(request: Request, resource: str) -> XapiRequest:
    method = request.method.upper()
    params = {k: v for k, v in request.query_params.items()}
    headers = {k.lower(): v for k, v in request.headers.items()}
    body = await request.body()
    if method == "POST" and "method" in params:
        # Alternate request syntax: the real method in ?method, headers and content in a form body.
        if set(params) != {"method"}:
            raise ParameterInvalid(
                "with ?method (alternate request syntax) every other parameter goes in the form body", "?method"
            )
        method = params["method"].upper()
        if method not in RESOURCES[resource] or method == "POST":
            raise ParameterInvalid(f"?method={params['method']} is not a method of /{resource}", "?method")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise ParameterInvalid(
                "the alternate request syntax needs a form body (Content-Type: application/x-www-form-urlencoded)",
                "Content-Type",
            )
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        body = form.pop("content", "").encode("utf-8")
        headers = {k: v for k, v in headers.items() if k not in ("content-type", "content-length")}
        for name in list(form):
            if name.lower() in ALTERNATE_HEADERS:
                headers[name.lower()] = form.pop(name)
        if body and "content-type" not in headers:
            headers["content-type"] = "application/json"
        if headers.get("x-experience-api-version", "").startswith("2."):
            raise ParameterInvalid(
                "xAPI 2.0 has no alternate request syntax: send the method, headers and body as they are", "?method"
            )
        params = form
    return XapiRequest(method, resource, request.url.path, params, headers, body)


EXAMPLE_STATEMENT = {
    "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-17"}},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/responded", "display": {"en-US": "responded"}},
    "object": {"objectType": "Activity", "id": "https://trm.example/v1/solves/3f0c3f9e-5d2f-4c55-9a3c-0d3b7f0b8a11"},
    "result": {"success": True},
}
EXAMPLE_AGENT = '{"mbox": "mailto:learner@example.com"}'
_PARAMETERS = {
    "statementId": "The statement's id (a UUID).",
    "voidedStatementId": "The id of a voided statement.",
    "agent": "An Agent or identified Group as JSON.",
    "verb": "A verb IRI.",
    "activity": "An activity IRI.",
    "registration": "A registration UUID.",
    "related_activities": "true: match context activities too.",
    "related_agents": "true: match instructor, team, authority and sub-statements too.",
    "since": "Only statements stored after this time (ISO 8601).",
    "until": "Only statements stored at or before this time.",
    "limit": "Page size (0: the server's maximum).",
    "format": "ids, exact or canonical.",
    "attachments": "true: answer multipart/mixed with attachment data.",
    "ascending": "true: oldest first.",
    "more": "A continuation token from a StatementResult's more link.",
    "activityId": "The activity IRI.",
    "stateId": "The state document's id.",
    "profileId": "The profile document's id.",
}
_RESOURCE_PARAMETERS = {
    ("statements", "GET"): [
        "statementId",
        "voidedStatementId",
        "agent",
        "verb",
        "activity",
        "registration",
        "related_activities",
        "related_agents",
        "since",
        "until",
        "limit",
        "format",
        "attachments",
        "ascending",
        "more",
    ],
    ("statements", "PUT"): ["statementId"],
    ("activities/state", "*"): ["activityId", "agent", "registration", "stateId", "since"],
    ("activities/profile", "*"): ["activityId", "profileId", "since"],
    ("agents/profile", "*"): ["agent", "profileId", "since"],
    ("activities", "GET"): ["activityId"],
    ("agents", "GET"): ["agent"],
}


#: What every xAPI resource may answer besides 401/403/500: the specification's 400 for bad input, 404.
XAPI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad Request"},
    404: {"description": "Not Found"},
}


def _openapi_of(resource: str, method: str) -> dict[str, Any]:
    """Parameters, the version header and request examples of one operation (documentation only)."""
    names = _RESOURCE_PARAMETERS.get((resource, method)) or _RESOURCE_PARAMETERS.get((resource, "*"), [])
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "query",
            "required": name in ("activityId",) or (name == "statementId" and method == "PUT"),
            "description": _PARAMETERS[name],
            "schema": {"type": "string"},
            **({"example": EXAMPLE_AGENT} if name == "agent" else {}),
        }
        for name in names
    ]
    if resource != "about":
        parameters.append(
            {
                "name": "X-Experience-API-Version",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "example": XAPI_VERSION},
            }
        )
    extra: dict[str, Any] = {"parameters": parameters}
    if resource == "statements" and method in ("POST", "PUT"):
        body = [EXAMPLE_STATEMENT] if method == "POST" else EXAMPLE_STATEMENT
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array" if method == "POST" else "object"}, "example": body},
                "multipart/mixed": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    elif method in ("PUT", "POST"):
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": {"bookmark": "page-4", "score": 7}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    return extra


def xapi_router(lrs_of: Callable[[Request], LrsHttp], prefix: str = "/xapi") -> APIRouter:
    """The ``/xapi`` resources; ``lrs_of(request)`` gives the ``LrsHttp`` answering them."""
    router = APIRouter(prefix=prefix, tags=["xAPI"])

    def make_endpoint(resource: str) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            lrs = lrs_of(request)
            cors = _cors_headers(lrs.settings, request.headers.get("origin"))
            if request.method == "OPTIONS":
                headers = {
                    **cors,
                    "Access-Control-Allow-Methods": ", ".join(RESOURCES[resource] + ("OPTIONS",)),
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": "600",
                }
                return Response(status_code=204, headers={**headers, "X-Experience-API-Version": XAPI_VERSION})
            try:
                xapi_request = await _read_request(request, resource)
                reply = await run_in_threadpool(lrs.handle, xapi_request)
            except XapiError as error:
                reply = _problem(error, request.url.path)
            except (SQLAlchemyError, StoreError) as error:  # the database is away: nothing was acknowledged
                log.error("xAPI %s %s: the store failed: %s", request.method, request.url.path, error)
                reply = _problem(
                    StoreAway(
                        "the store cannot be reached; nothing was stored, retry the request "
                        "(statement ids make retries safe)"
                    ),
                    request.url.path,
                )
                reply.headers["Retry-After"] = "5"
            except Exception as error:  # noqa: BLE001 - answered as a problem document like every error
                log.exception("xAPI %s %s failed", request.method, request.url.path)
                reply = _problem(
                    InternalError(
                        f"the LRS failed while answering ({type(error).__name__}); the error is logged on the server"
                    ),
                    request.url.path,
                )
            if resource == "statements" and "GET" in (request.method, request.query_params.get("method", "").upper()):
                reply.headers["X-Experience-API-Consistent-Through"] = consistent_through(lrs.statements)
            reply.headers.update(cors)
            reply.headers["X-Experience-API-Version"] = response_version(
                request.headers.get("x-experience-api-version")
            )
            return Response(reply.content, status_code=reply.status, headers=reply.headers, media_type=reply.media_type)

        return endpoint

    for resource, methods in RESOURCES.items():
        endpoint = make_endpoint(resource)
        for method in methods + ("OPTIONS",):
            operation = f"xapi_{method.lower()}_{resource.replace('/', '_')}"
            # The handler checks the token itself (xAPI's error documents); the dependency tells OpenAPI.
            guard = [Depends(checked_by_handler())] if resource != "about" and method != "OPTIONS" else []
            router.add_api_route(
                f"/{resource}",
                endpoint,
                methods=[method],
                operation_id=operation,
                name=operation,
                summary=f"{method} /xapi/{resource}",
                openapi_extra=_openapi_of(resource, method),
                include_in_schema=method not in ("HEAD", "OPTIONS"),
                dependencies=guard,
                responses=XAPI_ERROR_RESPONSES,
            )
    return router
