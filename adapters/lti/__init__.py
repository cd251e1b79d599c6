"""LTI 1.3 Advantage tool: ``trm serve`` registered in a course platform (Canvas, Moodle, Brightspace,
Blackboard, Open edX).

- OIDC third-party login initiation (``/lti/login``) and launches (``/lti/launch``) whose ``id_token``
  is verified against the platform's JWKS (signature, issuer, audience/azp, expiry, single-use nonce
  and state, deployment) with PyJWT;
- resource-link launches open the activity of the module the link names, solved on the server with
  the launch's context id and user id as the solve context (per-course pins and canaries apply);
- Deep Linking: a course author picks a module, optionally pinning a version;
- Assignment and Grade Services: the learner's own score (module-filled cells earn nothing) goes to
  the link's line item;
- platforms registered with ``trm lti add-platform`` (the adapter's store schema ``lti``);
  the tool's keys at ``/.well-known/jwks.json``.

Routes arrive through ``trm_register_routes`` (``lti.routes``), commands through
``trm_register_commands`` (``lti.commands``).
"""

from .storage import LtiError, LtiStore, Platform

__all__ = ["LtiError", "LtiStore", "Platform"]
