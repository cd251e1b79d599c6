"""The LTI 1.3 routes of ``trm serve`` (registered through ``trm_register_routes``): OIDC login
initiation, launches (resource link, deep linking), the launched activity's solve and submit, and the
tool's JWKS. The work is done by ``storage``, ``messages``, ``activity`` and ``ags``; this module
speaks HTTP."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from trm_modules import hookimpl
from trm_modules.records import OutcomeRecord, SolveContext
from trm_modules.server.insights_routes import outcome_intake
from trm_modules.server.problems import Problem
from trm_modules.server.runtime import ServerRuntime

from . import activity as activities
from .ags import post_score
from .messages import deep_linking_response, tool_jwks, unverified_issuer, verify_id_token
from .pages import activity_page, auto_post_form, deep_link_picker
from .storage import (
    AGS_CLAIM,
    AGS_SCORE_SCOPE,
    CONTEXT_CLAIM,
    CUSTOM_CLAIM,
    DEEP_LINKING_SETTINGS_CLAIM,
    MESSAGE_TYPE_CLAIM,
    RESOURCE_LINK_CLAIM,
    STATE_TTL,
    TARGET_LINK_CLAIM,
    LtiError,
    LtiStore,
)
from .storage import trm_privacy_providers, trm_store_schemas  # noqa: F401 - lti_routes owns the LTI tables

#: Puzzles an LTI activity draws for one resource link.
PUZZLES_PER_LAUNCH = 5
JWKS_PATH = "/.well-known/jwks.json"
#: Name prefix of the cookie binding a login's state to the browser that started it.
STATE_COOKIE_PREFIX = "trm_lti_state_"


def _lti(request: Request) -> LtiStore:
    state = request.app.state
    if not hasattr(state, "lti_store"):
        runtime: ServerRuntime = state.runtime
        state.lti_store = LtiStore(runtime.store)
    return state.lti_store


def _runtime(request: Request) -> ServerRuntime:
    return request.app.state.runtime


def _problem(exc: LtiError) -> Problem:
    return Problem(exc.status, f"lti-{exc.slug}", "LTI request refused", exc.message)


async def _params(request: Request) -> dict[str, str]:
    """Query parameters and, for a POST, form fields (OIDC allows both)."""
    params = dict(request.query_params)
    if request.method == "POST":
        params.update({k: str(v) for k, v in (await request.form()).items()})
    return params


def tool_urls(public_url: str) -> dict[str, str]:
    """What an LMS administrator enters when registering the tool."""
    base = public_url.rstrip("/")
    return {
        "oidc_initiation_url": f"{base}/lti/login",
        "target_link_uri": f"{base}/lti/launch",
        "redirect_uris": f"{base}/lti/launch",
        "deep_linking_url": f"{base}/lti/launch",
        "jwks_url": f"{base}{JWKS_PATH}",
    }


def _module_of(claims: dict[str, Any]) -> tuple[str | None, str | None]:
    """The module (and pinned version) a resource link names: its custom parameters, else its target URI's query."""
    custom = claims.get(CUSTOM_CLAIM) or {}
    query = parse_qs(urlsplit(str(claims.get(TARGET_LINK_CLAIM, ""))).query)
    module = custom.get("module") or (query.get("module") or [None])[0]
    version = custom.get("version") or (query.get("version") or [None])[0]
    return module, version or None


def _launch_resource_link(request: Request, lti: LtiStore, platform: Any, claims: dict[str, Any]) -> str:
    runtime = _runtime(request)
    module, version = _module_of(claims)
    if not module:
        raise LtiError(
            400,
            "no-module",
            "the link names no module: set the custom parameter module=NAME "
            "(deep linking does this) or ?module=NAME on the target link URI",
        )
    if module not in {slot.name for slot in runtime.host.modules()}:
        raise LtiError(404, "unknown-module", f"module {module!r} is not served here")
    context_id = (claims.get(CONTEXT_CLAIM) or {}).get("id")
    if version and context_id:
        # A link pinned by deep linking pins its course: per-course pins are how the host routes versions.
        slot = next(s for s in runtime.host.modules() if s.name == module)
        if slot.pins.get(context_id) != version:
            runtime.host.pin(module, context_id, version)
    package = runtime.registry.open(module, version or runtime.registry.active_version(module))
    link_id = (claims.get(RESOURCE_LINK_CLAIM) or {}).get("id", "")
    seed = int.from_bytes(hashlib.sha256(f"{platform.issuer}|{link_id}".encode()).digest()[:4], "big")
    drawn = activities.draw_activity(package, PUZZLES_PER_LAUNCH, seed)
    launch = lti.create_launch(
        kind="resource-link", platform=platform, claims=claims, module=module, version=version, activity=drawn
    )
    ags = claims.get(AGS_CLAIM) or {}
    return activity_page(
        launch_id=launch.id,
        title=drawn["title"],
        module=module,
        version=version,
        view=drawn["view"],
        puzzles=drawn["puzzles"],
        context_title=(claims.get(CONTEXT_CLAIM) or {}).get("title"),
        gradebook=bool(ags.get("lineitem")) and AGS_SCORE_SCOPE in ags.get("scope", []),
    )


def _launch_deep_link(request: Request, lti: LtiStore, platform: Any, claims: dict[str, Any]) -> str:
    runtime = _runtime(request)
    settings = claims.get(DEEP_LINKING_SETTINGS_CLAIM) or {}
    if not settings.get("deep_link_return_url"):
        raise LtiError(400, "deep-linking-settings", "a deep-linking request must carry deep_link_return_url")
    launch = lti.create_launch(
        kind="deep-link", platform=platform, claims=claims, module=None, version=None, activity={"settings": settings}
    )
    modules: dict[str, list[str]] = {}
    for entry in runtime.registry.list(include_yanked=False):
        modules.setdefault(entry.name, []).append(entry.version)
    # Only modules whose task has a browser activity can be linked.
    modules = {
        name: versions
        for name, versions in modules.items()
        if activities.has_activity(runtime.registry.open(name, runtime.registry.active_version(name)))
    }
    return deep_link_picker(launch_id=launch.id, modules=modules, platform_name=platform.name)


def state_cookie_name(state: str) -> str:
    """The cookie that binds a login ``state`` to the browser that started the login (one per login, so two
    tabs launching at once do not overwrite each other's)."""
    return STATE_COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


def _check_state_cookie(request: Request, state: str) -> None:
    """The IMS security framework binds state to the user agent: a launch whose browser did not start the
    login (login CSRF: an attacker's own state posted from a victim's browser) carries no matching cookie."""
    cookie = request.cookies.get(state_cookie_name(state), "")
    if not secrets.compare_digest(cookie.encode(), state.encode()):
        raise LtiError(
            401,
            "state-not-bound",
            "this launch's state was not issued to this browser (its login "
            "cookie is missing or different); start the launch again from the "
            "platform. A browser blocking third-party cookies in an iframe "
            "should open the tool in a new window",
        )


def _launch(request: Request, params: dict[str, str]) -> str:
    lti = _lti(request)
    if "id_token" not in params or "state" not in params:
        raise LtiError(400, "bad-launch", "a launch must post id_token and state (response_mode=form_post)")
    _check_state_cookie(request, params["state"])
    platform, nonce = lti.consume_state(params["state"])
    issuer, _ = unverified_issuer(params["id_token"])
    if issuer != platform.issuer:
        raise LtiError(
            401,
            "wrong-issuer",
            f"the id_token's issuer {issuer!r} is not the platform that started this login ({platform.issuer})",
        )
    claims = verify_id_token(platform, params["id_token"], nonce)
    lti.use_nonce(platform, str(claims["nonce"]))
    if claims[MESSAGE_TYPE_CLAIM] == "LtiDeepLinkingRequest":
        return _launch_deep_link(request, lti, platform, claims)
    return _launch_resource_link(request, lti, platform, claims)


def _solve_context(launch: Any) -> SolveContext:
    return SolveContext(
        platform=launch.platform.issuer,
        course=launch.context_id,
        activity=launch.resource_link_id,
        learner=launch.user_id,
    )


def _puzzle(launch: Any, body: Any) -> tuple[int, dict[str, Any]]:
    if launch.kind != "resource-link":
        raise LtiError(409, "not-an-activity", "this launch picks a module (deep linking); it has no activity")
    index = body.get("puzzle") if isinstance(body, dict) else None
    puzzles = launch.activity["puzzles"]
    if not isinstance(index, int) or not 0 <= index < len(puzzles):
        raise LtiError(422, "bad-puzzle", f"'puzzle' must be an index from 0 to {len(puzzles) - 1}")
    return index, puzzles[index]


def outcome_of_submit(launch: Any, puzzle: dict[str, Any], cells: list[int], graded: Any) -> OutcomeRecord:
    """The learner outcome of a graded submit: the launch's learner (``sub``, the pseudonym of their
    solves), course and resource link, the learner's own cells over the blanks, and the solves they
    asked for on this puzzle. Its id is the launch, puzzle and answer: the same submit sent twice is one
    outcome; a new answer is a new attempt."""
    answer = hashlib.sha256(repr(cells).encode()).hexdigest()[:16]
    return OutcomeRecord(
        id=f"lti:{launch.id}:{puzzle['id']}:{answer}",
        learner=launch.user_id,
        course=launch.context_id,
        activity=launch.resource_link_id,
        score=graded.earned,
        max_score=graded.blanks or None,
        success=graded.success,
        solve_ids=list(dict.fromkeys(puzzle.get("solve_ids", []))),
        source="lti",
    )


async def _record_outcome(
    request: Request, launch: Any, index: int, puzzle: dict[str, Any], cells: list[int], graded: Any
) -> bool:
    """Keep the learner's result in the store (durable before the answer); False if the store cannot take it now."""
    try:
        outcome = outcome_of_submit(launch, puzzle, cells, graded)
    except ValueError:  # nothing to grade (no blank cells): no outcome
        return False
    try:
        await outcome_intake(request).accept(outcome)
    except Problem:
        return False
    return True


def lti_router() -> APIRouter:
    """``/.well-known/jwks.json`` and ``/lti/…``."""
    router = APIRouter(tags=["LTI 1.3"])

    @router.get(JWKS_PATH, summary="The tool's public keys (JWKS)")
    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(tool_jwks, _lti(request)))

    @router.get("/lti/config", summary="The URLs an LMS administrator registers this tool with")
    def config(request: Request) -> dict[str, str]:
        return tool_urls(_runtime(request).settings.public_url)

    async def login(request: Request) -> RedirectResponse:
        params = await _params(request)
        missing = [name for name in ("iss", "login_hint", "target_link_uri") if not params.get(name)]
        if missing:
            raise Problem(400, "lti-bad-login", "LTI request refused", f"login initiation lacks {', '.join(missing)}")
        lti = _lti(request)
        platform = await run_in_threadpool(lti.find_platform, params["iss"], params.get("client_id"))
        if platform is None:
            raise Problem(
                400,
                "lti-unknown-platform",
                "LTI request refused",
                f"no platform {params['iss']!r} (client id {params.get('client_id')!r}) is registered; "
                "register it with trm lti add-platform",
            )
        state, nonce = await run_in_threadpool(lti.issue_state, platform)
        query = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": platform.client_id,
            "redirect_uri": tool_urls(_runtime(request).settings.public_url)["redirect_uris"],
            "login_hint": params["login_hint"],
            "state": state,
            "nonce": nonce,
        }
        if params.get("lti_message_hint"):
            query["lti_message_hint"] = params["lti_message_hint"]
        separator = "&" if urlsplit(platform.auth_login_url).query else "?"
        response = RedirectResponse(f"{platform.auth_login_url}{separator}{urlencode(query)}", status_code=302)
        # The launch comes back as a cross-site form POST: over HTTPS the cookie must be SameSite=None; Secure;
        # over plain HTTP (development) it carries no SameSite attribute (browsers' Lax+POST allowance).
        secure = str(_runtime(request).settings.public_url or "").startswith("https://")
        response.set_cookie(
            state_cookie_name(state),
            state,
            max_age=int(STATE_TTL.total_seconds()),
            path="/lti/",
            httponly=True,
            secure=secure,
            samesite="none" if secure else None,
        )
        return response

    for method in ("GET", "POST"):  # OIDC allows both; one operation id each
        router.add_api_route(
            "/lti/login",
            login,
            methods=[method],
            operation_id=f"lti_login_{method.lower()}",
            summary="OIDC third-party login initiation",
        )

    @router.post("/lti/launch", response_class=HTMLResponse, summary="Launch (resource link or deep linking)")
    async def launch(request: Request) -> HTMLResponse:
        params = await _params(request)
        try:
            page = HTMLResponse(await run_in_threadpool(_launch, request, params))
        except LtiError as exc:
            raise _problem(exc) from exc
        page.delete_cookie(state_cookie_name(params["state"]), path="/lti/")
        return page

    @router.post(
        "/lti/launches/{launch_id}/solve", summary="Ask the module, in the launch's course and learner context"
    )
    async def solve(launch_id: str, request: Request) -> dict[str, Any]:
        lti, runtime = _lti(request), _runtime(request)
        try:
            launch = await run_in_threadpool(lti.launch, launch_id)
            index, puzzle = _puzzle(launch, await request.json())
            answer = await runtime.host.asolve(launch.module, puzzle["input"], _solve_context(launch))
            codec = runtime.registry.open(launch.module, answer.version).codec()
            tokens = [int(t) for t in codec.encode_output(answer.output, puzzle["input"])]
        except LtiError as exc:
            raise _problem(exc) from exc
        blank = launch.activity["view"]["blank_token"]
        filled = [i for i, t in enumerate(puzzle["tokens"]) if t == blank]
        activity = launch.activity
        activity["puzzles"][index]["module_cells"] = sorted(set(puzzle["module_cells"]) | set(filled))
        # The solves the learner asked for on this puzzle: the learner outcome of its submit names them.
        activity["puzzles"][index]["solve_ids"] = [*puzzle.get("solve_ids", []), answer.solve_id]
        await run_in_threadpool(lti.save_activity, launch.id, activity)
        return {
            "tokens": tokens,
            "cells": len(filled),
            "version": answer.version,
            "solve_id": answer.solve_id,
            "valid": answer.valid,
        }

    @router.post("/lti/launches/{launch_id}/submit", summary="Grade the learner's answer and send it to the gradebook")
    async def submit(launch_id: str, request: Request) -> dict[str, Any]:
        lti = _lti(request)
        try:
            launch = await run_in_threadpool(lti.launch, launch_id)
            body = await request.json()
            index, puzzle = _puzzle(launch, body)
            cells = body.get("cells")
            if not isinstance(cells, list) or not all(isinstance(c, int) for c in cells):
                raise LtiError(422, "bad-cells", "'cells' must be a list of tokens, one per cell")
            try:
                graded = activities.grade(puzzle, launch.activity["view"]["blank_token"], cells)
            except ValueError as exc:
                raise LtiError(422, "bad-cells", str(exc)) from exc
        except LtiError as exc:
            raise _problem(exc) from exc
        result = {
            "earned": graded.earned,
            "blanks": graded.blanks,
            "scaled": graded.scaled,
            "success": graded.success,
            "by_module": graded.by_module,
            "cells": graded.cells,
        }
        comment = f"{launch.module} {puzzle['id']}: {graded.earned} of {graded.blanks} cells by the learner" + (
            f", {graded.by_module} filled by the module" if graded.by_module else ""
        )
        result["outcome_recorded"] = await _record_outcome(request, launch, index, puzzle, cells, graded)
        try:
            await run_in_threadpool(
                lambda: post_score(lti, launch, score_given=graded.earned, score_maximum=graded.blanks, comment=comment)
            )
            return {**result, "recorded": True, "message": "Sent to your course's gradebook."}
        except LtiError as exc:
            return {**result, "recorded": False, "message": f"Not recorded in the gradebook: {exc.message}"}

    @router.post(
        "/lti/deep-links/{launch_id}",
        response_class=HTMLResponse,
        summary="Return the picked module to the platform (LtiDeepLinkingResponse)",
    )
    async def deep_link(launch_id: str, request: Request) -> HTMLResponse:
        lti, runtime = _lti(request), _runtime(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            launch = await run_in_threadpool(lti.launch, launch_id)
            if launch.kind != "deep-link":
                raise LtiError(409, "not-deep-linking", "this launch is not a deep-linking request")
            module = form.get("module", "")
            versions = runtime.registry.list_versions(module) if module else []
            if not versions:
                raise LtiError(422, "unknown-module", f"module {module!r} is not published here")
            version = form.get(f"version_{module}") or None
            if version is not None and version not in versions:
                raise LtiError(
                    422, "unknown-version", f"{module} has no version {version!r}; published: {', '.join(versions)}"
                )
        except LtiError as exc:
            raise _problem(exc) from exc
        title = module + (f" {version}" if version else "")
        item = {
            "type": "ltiResourceLink",
            "title": title,
            "url": tool_urls(runtime.settings.public_url)["target_link_uri"],
            "custom": {"module": module, **({"version": version} if version else {})},
            "lineItem": {"scoreMaximum": 1, "label": title, "resourceId": module},
        }
        settings = launch.activity["settings"]
        token = await run_in_threadpool(
            deep_linking_response, lti, launch.platform, launch.deployment_id, [item], settings.get("data")
        )
        return HTMLResponse(auto_post_form(settings["deep_link_return_url"], {"JWT": token}))

    return router


@hookimpl
def trm_register_routes(runtime: ServerRuntime) -> APIRouter:
    """Add the LTI 1.3 tool's routes to ``trm serve``."""
    return lti_router()
