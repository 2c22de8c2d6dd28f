//! The internal listener's one gate. Every guarded route runs through
//! [`guard`] before its handler: the caller is authenticated, the
//! permission its route needs ([`ACCESS`]) is checked against its grant,
//! the path's `user_ref` against the grant's prefixes, and a refusal is
//! answered (`401`, or `403 forbidden` naming the missing permission or the
//! out-of-scope `user_ref`), audited and counted here. Handlers receive what
//! was established as [`Admitted`]; a handler that asks for it on a route
//! the gate did not guard fails closed.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};

use super::audit::{AuditTrail, Refusal};
use super::problem::{HttpError, Problem};
use super::proxy::error::ProxyError;
use super::proxy::path;
use super::{
    API_TOKEN_PATH, ASTRA_AUTHORIZATION_CODE_PATH, ASTRA_AUTHORIZATION_CONFIRM_PATH,
    ASTRA_AUTHORIZATION_PATH, ASTRA_PROXY_PATH, ASTRA_REFRESH_TOKEN_PATH, ASTRA_TOKEN_PATH,
    ASTRA_TOKEN_REFRESH_PATH, ASTRA_USER_PATH, ASTRA_USERS_PATH, ASTRADA_PROXY_PATH,
};
use crate::caller_auth::grants::proxy::Upstream;
use crate::caller_auth::grants::{Denied, Grant, Permission};
use crate::caller_auth::{AuthError, Caller, InternalAuth};
use crate::observability::Metrics;
use crate::user_tokens::{UserRef, UserTokenError};

/// The permission each guarded route and method needs: the whole access
/// policy of the internal listener in one table. `/metrics`, `/healthz`
/// and `/readyz` need none; a method not listed is answered `405` by its
/// route without any check.
pub const ACCESS: &[(&str, &str, Permission)] = &[
    (API_TOKEN_PATH, "GET", Permission::AstradaApiToken),
    (ASTRA_TOKEN_PATH, "GET", Permission::AstraToken),
    (ASTRA_TOKEN_REFRESH_PATH, "POST", Permission::AstraToken),
    (ASTRA_AUTHORIZATION_PATH, "POST", Permission::AstraManage),
    (
        ASTRA_AUTHORIZATION_CODE_PATH,
        "POST",
        Permission::AstraManage,
    ),
    (
        ASTRA_AUTHORIZATION_CONFIRM_PATH,
        "POST",
        Permission::AstraManage,
    ),
    (ASTRA_REFRESH_TOKEN_PATH, "PUT", Permission::AstraManage),
    (ASTRA_USER_PATH, "DELETE", Permission::AstraManage),
    (ASTRA_USER_PATH, "GET", Permission::AstraRead),
    (ASTRA_USERS_PATH, "GET", Permission::AstraRead),
];

/// The proxy routes and the upstream each reaches. They need no permission
/// but a proxy rule of the caller's grant for the call's method and path
/// (`[[internal_auth.grants.proxy]]`), counted and audited as
/// `proxy:UPSTREAM`.
pub const PROXY_ACCESS: &[(&str, Upstream)] = &[
    (ASTRADA_PROXY_PATH, Upstream::Astrada),
    (ASTRA_PROXY_PATH, Upstream::Astra),
];

/// What a proxy call to `upstream` is counted and audited as needing.
pub fn proxy_needs(upstream: Upstream) -> &'static str {
    match upstream {
        Upstream::Astrada => "proxy:astrada",
        Upstream::Astra => "proxy:astra",
    }
}

/// The permission `method` on `route` needs, if the route is guarded.
pub fn required(route: &str, method: &str) -> Option<Permission> {
    ACCESS
        .iter()
        .find(|(r, m, _)| *r == route && *m == method)
        .map(|(_, _, permission)| *permission)
}

/// Who may do what on the internal listener, and the record of refusals.
pub struct InternalGate {
    auth: InternalAuth,
    audit: Arc<AuditTrail>,
    metrics: Metrics,
}

/// What the gate established about a request: who called, under which
/// grant, and the path's `user_ref` (parsed, within the grant's prefixes).
pub struct Admitted {
    pub caller: Caller,
    pub grant: Arc<Grant>,
    pub user: Option<UserRef>,
    /// On a proxy route: the path the upstream will see, normalised, which
    /// the caller's proxy rules were matched on.
    pub proxy_path: Option<String>,
}

impl Admitted {
    /// The path's `user_ref`; every per-user route has one.
    pub fn user(&self) -> Result<&UserRef, Problem> {
        self.user
            .as_ref()
            .ok_or_else(|| UserTokenError::InvalidUserRef.into())
    }
}

impl FromRequest for Admitted {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions_mut()
                .remove::<Admitted>()
                .ok_or_else(|| HttpError::Unguarded.into()),
        )
    }
}

impl InternalGate {
    pub fn new(auth: InternalAuth, audit: Arc<AuditTrail>, metrics: Metrics) -> Self {
        Self {
            auth,
            audit,
            metrics,
        }
    }

    /// Authenticates the caller of `route`; a refusal is counted and
    /// audited under `needs` (a permission, or `proxy:UPSTREAM`).
    async fn authenticate(
        &self,
        req: &HttpRequest,
        route: &'static str,
        needs: &'static str,
    ) -> Result<Caller, Problem> {
        if self.auth.is_open() {
            local_only(req).inspect_err(|_| self.metrics.internal_refusal(needs, "not_local"))?;
        }
        match self.auth.authenticate(req).await {
            Ok(caller) => Ok(caller),
            Err(e @ (AuthError::Missing | AuthError::Invalid(_))) => {
                self.metrics.internal_refusal(needs, "unauthenticated");
                let refused = Refusal {
                    route,
                    permission: needs,
                    caller: None,
                    user_ref: None,
                };
                self.audit.internal_refused(req, &refused, &e);
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Counts, audits and answers an authenticated caller's refusal.
    fn refuse(
        &self,
        req: &HttpRequest,
        refused: &Refusal<'_>,
        denied: Denied,
    ) -> Result<Admitted, Problem> {
        self.metrics
            .internal_refusal(refused.permission, denied.reason());
        self.audit.internal_refused(req, refused, &denied);
        Err(denied.into())
    }

    /// Authenticates, authorizes and scopes one request to `route`.
    async fn admit(
        &self,
        req: &HttpRequest,
        route: &'static str,
        permission: Permission,
    ) -> Result<Admitted, Problem> {
        let needs = permission.as_str();
        let caller = self.authenticate(req, route, needs).await?;
        let refusal = |caller, user_ref| Refusal {
            route,
            permission: needs,
            caller,
            user_ref,
        };
        let grant = match self.auth.authorize(&caller, permission) {
            Ok(grant) => grant,
            Err(denied) => return self.refuse(req, &refusal(Some(&caller), None), denied),
        };
        let user = path_user(req)?;
        if let Some(user) = &user
            && let Err(denied) = grant.check_user(&caller.subject, permission, user.as_str())
        {
            return self.refuse(req, &refusal(Some(&caller), Some(user.as_str())), denied);
        }
        Ok(Admitted {
            caller,
            grant,
            user,
            proxy_path: None,
        })
    }

    /// Admits one proxy call to `upstream`: authenticated, its path safe,
    /// a proxy rule of the caller's grant matching the method and the path
    /// the upstream will see, and the path's `user_ref` within the grant's
    /// prefixes.
    async fn admit_proxy(
        &self,
        req: &HttpRequest,
        route: &'static str,
        upstream: Upstream,
    ) -> Result<Admitted, Problem> {
        let needs = proxy_needs(upstream);
        let caller = self.authenticate(req, route, needs).await?;
        let raw = path::raw_path(req).ok_or(ProxyError::UnsafePath("is missing"))?;
        let proxy_path = path::normalize(raw).map_err(ProxyError::UnsafePath)?;
        let user = path_user(req)?;
        let user_ref = user.as_ref().map(UserRef::as_str);
        let refused = Refusal {
            route,
            permission: needs,
            caller: Some(&caller),
            user_ref,
        };
        let method = req.method().as_str();
        let grant = match self.auth.grant_of(&caller) {
            Some(grant) if grant.permits_proxy(upstream, method, &proxy_path) => grant,
            _ => {
                let denied = Denied::Proxy {
                    identity: caller.subject.to_string(),
                    upstream,
                    method: method.to_owned(),
                    path: proxy_path,
                };
                return self.refuse(req, &refused, denied);
            }
        };
        if let Some(user_ref) = user_ref
            && let Err(denied) = grant.check_scope(&caller.subject, user_ref)
        {
            return self.refuse(req, &refused, denied);
        }
        Ok(Admitted {
            caller,
            grant,
            user,
            proxy_path: Some(proxy_path),
        })
    }
}

/// The path's `user_ref`, parsed, if the route has one.
fn path_user(req: &HttpRequest) -> Result<Option<UserRef>, Problem> {
    match req.match_info().get("user_ref") {
        None => Ok(None),
        Some(raw) => Ok(Some(
            UserRef::parse(raw).map_err(|_| UserTokenError::InvalidUserRef)?,
        )),
    }
}

/// With nobody authenticated, the internal listener serves only programs on
/// this machine. A web page can reach `127.0.0.1` too: directly (its
/// browser then sends `Origin`), or through DNS rebinding (its browser
/// then sends the attacker's name as `Host`).
fn local_only(req: &HttpRequest) -> Result<(), HttpError> {
    if req.headers().contains_key(header::ORIGIN) {
        return Err(HttpError::NotLocal {
            reason: "the request carries an Origin header, as browsers send for web pages",
        });
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !is_loopback_host(host) {
        return Err(HttpError::NotLocal {
            reason: "the Host header does not name this machine (localhost or a loopback address)",
        });
    }
    Ok(())
}

/// `localhost`, `*.localhost` (RFC 6761) or a loopback address, with or
/// without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Hands an admitted request on with its [`Admitted`]; answers a refused one.
async fn pass_or_refuse<B: MessageBody + 'static>(
    verdict: Result<Admitted, Problem>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match verdict {
        Ok(admitted) => {
            req.extensions_mut().insert(admitted);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(problem) => {
            let response = problem.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// The middleware on each guarded route of the internal listener.
pub async fn guard(
    gate: Arc<InternalGate>,
    route: &'static str,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(permission) = required(route, req.method().as_str()) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let verdict = gate.admit(req.request(), route, permission).await;
    pass_or_refuse(verdict, req, next).await
}

/// The middleware on each proxy route: the caller's proxy rules for
/// `upstream` decide, on the normalised path (see [`InternalGate::admit_proxy`]).
/// Methods no proxy rule can name are left to the route's `405`.
pub async fn proxy_guard(
    gate: Arc<InternalGate>,
    route: &'static str,
    upstream: Upstream,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let method = req.method().as_str();
    if !crate::caller_auth::grants::proxy::METHODS.contains(&method) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let verdict = gate.admit_proxy(req.request(), route, upstream).await;
    pass_or_refuse(verdict, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::INTERNAL_PATHS;

    #[test]
    fn every_internal_route_but_metrics_and_probes_is_guarded() {
        for path in INTERNAL_PATHS {
            let guarded = ACCESS.iter().any(|(route, _, _)| route == path)
                || PROXY_ACCESS.iter().any(|(route, _)| route == path);
            let open = matches!(*path, "/metrics" | "/healthz" | "/readyz");
            assert_eq!(guarded, !open, "{path}");
        }
        assert_eq!(
            required(ASTRA_USER_PATH, "DELETE"),
            Some(Permission::AstraManage)
        );
        assert_eq!(required(ASTRA_USER_PATH, "PATCH"), None);
    }

    #[test]
    fn only_loopback_names_count_as_this_machine() {
        for local in [
            "localhost",
            "localhost:9090",
            "LOCALHOST",
            "app.localhost:9090",
            "127.0.0.1",
            "127.0.0.1:9090",
            "127.1.2.3:80",
            "[::1]:9090",
        ] {
            assert!(is_loopback_host(local), "{local}");
        }
        for remote in [
            "",
            "evil.example",
            "evil.example:9090",
            "localhost.evil.example",
            "10.0.0.1:9090",
            "[::2]:9090",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
    }

    #[test]
    fn grant_prefixes_and_user_refs_share_one_alphabet() {
        use crate::caller_auth::grants::scope::user_ref_char;
        for c in (0..=0x2ff).filter_map(char::from_u32) {
            // `.` alone is a dot segment, refused as a whole `user_ref` but
            // not as a character; `x.` tests the alphabet alone.
            let as_ref = UserRef::parse(&format!("x{c}")).is_ok();
            assert_eq!(user_ref_char(c), as_ref, "{c:?}");
        }
    }
}
