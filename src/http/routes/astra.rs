//! The `/astra/…` routes: per-user Astra authorizations. Everything but the
//! browser's callback is on the internal listener behind `internal_auth`.
//! No answer ever carries a refresh token; only the token routes carry an
//! access token.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::caller_auth::InternalAuth;
use crate::http::problem::Problem;
use crate::user_tokens::{Grant, HandedToken, UserRef, UserStatus, UserTokenError, UserTokens};

/// What the internal `/astra/…` routes need.
pub struct AstraRoutes {
    pub users: Arc<UserTokens>,
    pub auth: Arc<InternalAuth>,
}

impl AstraRoutes {
    /// Authenticates the workload, then parses the path's `user_ref`.
    async fn admit(&self, req: &HttpRequest) -> Result<UserRef, Problem> {
        let caller = self.auth.authenticate(req).await?;
        let user = user_ref(req)?;
        tracing::debug!(subject = %caller.subject, user_ref = %user, "astra route admitted");
        Ok(user)
    }
}

fn user_ref(req: &HttpRequest) -> Result<UserRef, Problem> {
    let raw = req.match_info().get("user_ref").unwrap_or_default();
    UserRef::parse(raw).map_err(|_| UserTokenError::InvalidUserRef.into())
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    generation: i64,
}

fn token_response(token: &HandedToken) -> HttpResponse {
    HttpResponse::Ok().json(TokenBody {
        access_token: token.access_token.expose_secret(),
        token_type: "Bearer",
        expires_in: token.expires_in,
        generation: token.generation,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    user_intent_id: Option<String>,
}

/// `POST /astra/users/{user_ref}/authorization` → 201 `{authorize_url, state, expires_in}`.
pub async fn start_authorization(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let user = route.admit(&req).await?;
    let body: StartBody = if body.is_empty() {
        StartBody::default()
    } else {
        json(&body)?
    };
    let started = route
        .users
        .authorizations()
        .start(&user, body.user_intent_id.as_deref())
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "authorize_url": started.authorize_url.as_str(),
        "state": started.state,
        "expires_in": started.expires_in,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: SecretString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenBody {
    refresh_token: SecretString,
}

/// `POST /astra/users/{user_ref}/authorization-code` `{"code"}` → 200 user summary.
pub async fn exchange_code(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &route, &body, |b: CodeBody| Grant::Code(b.code)).await
}

/// `PUT /astra/users/{user_ref}/refresh-token` `{"refresh_token"}` → 200 user summary.
pub async fn import_refresh_token(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &route, &body, |b: RefreshTokenBody| {
        Grant::RefreshToken(b.refresh_token)
    })
    .await
}

/// Admits the caller, then reads the grant from `body` and authorizes the user.
async fn authorize<B: for<'de> Deserialize<'de>>(
    req: &HttpRequest,
    route: &AstraRoutes,
    body: &[u8],
    grant: impl FnOnce(B) -> Grant,
) -> Result<HttpResponse, Problem> {
    let user = route.admit(req).await?;
    let grant = grant(json(body)?);
    if grant.is_empty() {
        return Err(UserTokenError::BadRequest("a required value is empty").into());
    }
    route
        .users
        .authorizations()
        .authorize(&user, &grant)
        .await?;
    Ok(HttpResponse::Ok().json(route.users.summary(&user).await?))
}

/// `GET /astra/users/{user_ref}/token`.
pub async fn token(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
) -> Result<HttpResponse, Problem> {
    let user = route.admit(&req).await?;
    Ok(token_response(&route.users.token(&user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleBody {
    stale_generation: i64,
}

/// `POST /astra/users/{user_ref}/token/refresh` with `{"stale_generation": N}`.
pub async fn refresh_stale(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let user = route.admit(&req).await?;
    let body: StaleBody = json(&body)?;
    Ok(token_response(
        &route
            .users
            .refresh_stale(&user, body.stale_generation)
            .await?,
    ))
}

/// `GET /astra/users/{user_ref}`.
pub async fn summary(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
) -> Result<HttpResponse, Problem> {
    let user = route.admit(&req).await?;
    Ok(HttpResponse::Ok().json(route.users.summary(&user).await?))
}

/// `DELETE /astra/users/{user_ref}` → 204.
pub async fn delete(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
) -> Result<HttpResponse, Problem> {
    let user = route.admit(&req).await?;
    route.users.delete(&user).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

/// Longest page of `GET /astra/users`.
const MAX_PAGE: u32 = 1000;

/// `GET /astra/users?status=…&limit=…&after=…` → `{users, next_after}`.
pub async fn list(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
) -> Result<HttpResponse, Problem> {
    route.auth.authenticate(&req).await?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|_| UserTokenError::BadRequest("the query takes status, limit and after only"))?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<UserStatus>().map_err(|_| {
            UserTokenError::BadRequest("status must be active or reauthorization_required")
        })?),
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(UserTokenError::BadRequest("limit must be between 1 and 1000").into());
    }
    let after = match query.after.as_deref() {
        None => None,
        Some(a) => Some(UserRef::parse(a).map_err(|_| UserTokenError::InvalidUserRef)?),
    };
    let users = route.users.list(status, after.as_ref(), limit).await?;
    let next_after = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.user_ref.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": users, "next_after": next_after })))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<SecretString>,
    state: Option<String>,
    /// OAuth's error redirect (RFC 6749 §4.1.2.1).
    error: Option<String>,
}

/// `GET /astra/callback` (public listener): where Astra sends the browser.
/// Exchanges the code and keeps the tokens until the customer's backend
/// confirms them (`…/authorization/confirm`); answers `303` to
/// `astra.completion_url` with `?outcome=confirm&handle=…` or
/// `?outcome=failed&problem=TYPE[&retryable=true]`, or JSON when no
/// completion URL is configured.
pub async fn callback(
    req: HttpRequest,
    users: web::Data<UserTokens>,
) -> Result<HttpResponse, Problem> {
    let query = web::Query::<CallbackQuery>::from_query(req.query_string())
        .map_err(|_| UserTokenError::BadRequest("the callback takes code and state"))?
        .into_inner();
    let authorizations = users.authorizations();
    let outcome = match (query.error, query.code, query.state) {
        (Some(error), _, state) => {
            Err(authorizations.deny_callback(&error, state.as_deref()).await)
        }
        (None, Some(code), Some(state)) if !code.expose_secret().is_empty() => {
            authorizations.complete_callback(&code, &state).await
        }
        // Without a state nobody can tell whose code this is.
        _ => Err(UserTokenError::StateInvalid),
    };
    let Some(completion) = authorizations.completion_url() else {
        let awaiting = outcome?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "outcome": "confirm",
            "handle": awaiting.handle,
            "expires_in": awaiting.expires_in,
        })));
    };
    let mut target = completion.clone();
    match outcome {
        Ok(awaiting) => {
            target
                .query_pairs_mut()
                .append_pair("outcome", "confirm")
                .append_pair("handle", &awaiting.handle);
        }
        Err(e) => {
            let retryable = e.is_transient();
            let problem = Problem::from(e);
            let mut query = target.query_pairs_mut();
            query
                .append_pair("outcome", "failed")
                .append_pair("problem", &problem.type_uri());
            if retryable {
                query.append_pair("retryable", "true");
            }
        }
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target.as_str()))
        // The handle is a bearer secret until confirmed.
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    handle: SecretString,
}

/// `POST /astra/users/{user_ref}/authorization/confirm` `{"handle"}` → 200
/// user summary. The caller vouches that the handle came back to the
/// session of the person `user_ref` names.
pub async fn confirm_authorization(
    req: HttpRequest,
    route: web::Data<AstraRoutes>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let user = route.admit(&req).await?;
    let body: ConfirmBody = json(&body)?;
    if body.handle.expose_secret().trim().is_empty() {
        return Err(UserTokenError::BadRequest("a required value is empty").into());
    }
    route
        .users
        .authorizations()
        .confirm(&user, body.handle.expose_secret())
        .await?;
    Ok(HttpResponse::Ok().json(route.users.summary(&user).await?))
}

/// The body as `T`, which must arrive as a JSON object: serde would also
/// fill a struct from an array (`[5]`).
fn json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Problem> {
    let refused = || UserTokenError::BadRequest("the body is not the expected JSON object").into();
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(refused());
    }
    serde_json::from_slice(body).map_err(|_| refused())
}
