"""Who is calling: a ``RequestContext`` from the request's headers, for either
``auth_strategy``.

``noauth`` trusts ``X-Auth-Token: <user>:<project>`` as is (development only);
``keystone`` trusts only the identity headers keystonemiddleware.auth_token wrote after
validating the token (it strips any the caller sent). Never log a token.
"""

from __future__ import annotations

import logging

import webob
from oslo_config import cfg

from volmgr import exception
from volmgr.context import RequestContext, new_request_id

LOG = logging.getLogger(__name__)


def warn_if_noauth(conf: cfg.ConfigOpts) -> None:
    """One line at start-up: noauth believes whatever the client says it is."""
    if conf.auth_strategy != "keystone":
        LOG.warning("auth_strategy = noauth: every caller is whoever its X-Auth-Token "
                    "names and 'X-Roles: admin' makes it an admin; use only on a trusted "
                    "network, never facing users (see docs/operations.md)")


def _roles(header: str | None) -> tuple[str, ...]:
    if not header:
        return ()
    return tuple(role.strip().lower() for role in header.split(",") if role.strip())


def _request_id(http: webob.Request) -> str:
    # A request id from the caller is only used when it has the expected shape, so a
    # client cannot inject arbitrary text into our logs.
    given = http.headers.get("X-Openstack-Request-Id", "")
    if given.startswith("req-") and 36 <= len(given) <= 40 and given[4:].replace(
            "-", "").isalnum():
        return given
    return new_request_id()


def noauth_context(http: webob.Request) -> RequestContext:
    token = http.headers.get("X-Auth-Token", "").strip()
    if not token:
        raise exception.NotAuthorized("Authentication required: send X-Auth-Token "
                                      "<user>:<project>.")
    user, sep, project = token.partition(":")
    if not sep:
        project = user
    if not user or not project:
        raise exception.NotAuthorized("X-Auth-Token must be <user>:<project>.")
    return RequestContext(project_id=project, user_id=user,
                          roles=_roles(http.headers.get("X-Roles")),
                          request_id=_request_id(http))


def keystone_context(http: webob.Request) -> RequestContext:
    if http.headers.get("X-Identity-Status") != "Confirmed":
        raise exception.NotAuthorized("Authentication required.")
    project = http.headers.get("X-Project-Id", "")
    user = http.headers.get("X-User-Id", "")
    if not project or not user:
        raise exception.NotAuthorized("A project-scoped token is required.")
    return RequestContext(project_id=project, user_id=user,
                          roles=_roles(http.headers.get("X-Roles")),
                          request_id=_request_id(http))


def context_for(http: webob.Request, strategy: str) -> RequestContext:
    if strategy == "keystone":
        return keystone_context(http)
    return noauth_context(http)


def check_project(ctx: RequestContext, url_project: str | None) -> None:
    """The project in the URL must be the caller's own (admins excepted). A mismatch is
    a 404, like any other project's resource."""
    if url_project is None or url_project == ctx.project_id or ctx.is_admin:
        return
    # Name the token's project: under noauth a token without ':' (as clients send with
    # no authentication, e.g. openstacksdk's "notused") is user and project alike.
    raise exception.NotFound(f"Project {url_project} could not be found; the token is "
                             f"scoped to project {ctx.project_id}.")
