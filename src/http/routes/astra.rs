//! The `/astra/…` routes: per-user Astra authorizations. Everything but the
//! browser's callback is on the internal listener, where the gate
//! (`http::access`) has admitted the caller, checked its permission and the
//! path's `user_ref` against its grant. No answer ever carries a refresh
//! token; only the token routes carry an access token. Every hand-out and
//! every authorization event is audited with the caller's identity.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http::access::Admitted;
use crate::http::audit::{Actor, AuditTrail, AuthorizationAction};
use crate::http::body::JsonBody;
use crate::http::problem::Problem;
use crate::user_tokens::{
    AwaitingConfirmation, Grant, HandedToken, UserRef, UserStatus, UserSummary, UserTokenError,
    UserTokens,
};

/// What the `/astra/…` routes need.
pub struct AstraRoutes {
    pub users: Arc<UserTokens>,
    pub audit: Arc<AuditTrail>,
}

impl AstraRoutes {
    /// Audits `action` on `user` by `actor` with the outcome of `result`.
    fn audit_authorization<T>(
        &self,
        actor: Actor<'_>,
        user: &UserRef,
        action: AuthorizationAction,
        result: &Result<T, Problem>,
        replaced: bool,
    ) {
        let outcome = result.as_ref().map_or_else(Problem::slug, |_| "ok");
        self.audit
            .astra_authorization(actor, user, action, outcome, replaced);
    }
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
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
    body: JsonBody,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    let body: StartBody = if body.is_empty() {
        StartBody::default()
    } else {
        json(&body)?
    };
    let started = route
        .users
        .authorizations()
        .start(user, body.user_intent_id.as_deref())
        .await
        .map_err(Problem::from);
    let actor = Actor::Caller(&admitted.caller);
    route.audit_authorization(actor, user, AuthorizationAction::Started, &started, false);
    let started = started?;
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
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
    body: JsonBody,
) -> Result<HttpResponse, Problem> {
    let action = AuthorizationAction::Completed;
    authorize(&route, &admitted, &body, action, |b: CodeBody| {
        Grant::Code(b.code)
    })
    .await
}

/// `PUT /astra/users/{user_ref}/refresh-token` `{"refresh_token"}` → 200 user summary.
pub async fn import_refresh_token(
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
    body: JsonBody,
) -> Result<HttpResponse, Problem> {
    let action = AuthorizationAction::Imported;
    authorize(&route, &admitted, &body, action, |b: RefreshTokenBody| {
        Grant::RefreshToken(b.refresh_token)
    })
    .await
}

/// Reads the grant from `body`, authorizes the user and audits the outcome.
async fn authorize<B: for<'de> Deserialize<'de>>(
    route: &AstraRoutes,
    admitted: &Admitted,
    body: &[u8],
    action: AuthorizationAction,
    grant: impl FnOnce(B) -> Grant,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    let grant = grant(json(body)?);
    if grant.is_empty() {
        return Err(UserTokenError::BadRequest("a required value is empty").into());
    }
    let row = route
        .users
        .authorizations()
        .authorize(user, grant)
        .await
        .map_err(Problem::from);
    // A new row starts at generation 1; a replaced one counts on.
    let replaced = row.as_ref().is_ok_and(|row| row.generation > 1);
    let actor = Actor::Caller(&admitted.caller);
    route.audit_authorization(actor, user, action, &row, replaced);
    row?;
    Ok(HttpResponse::Ok().json(route.users.summary(user).await?))
}

/// `GET /astra/users/{user_ref}/token`.
pub async fn token(
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    let token = route.users.token(user).await?;
    route
        .audit
        .astra_token_issued(&admitted.caller, user, &token, "token");
    Ok(token_response(&token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleBody {
    stale_generation: i64,
}

/// `POST /astra/users/{user_ref}/token/refresh` with `{"stale_generation": N}`.
pub async fn refresh_stale(
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
    body: JsonBody,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    let body: StaleBody = json(&body)?;
    let token = route
        .users
        .refresh_stale(user, body.stale_generation)
        .await?;
    route
        .audit
        .astra_token_issued(&admitted.caller, user, &token, "stale_generation");
    Ok(token_response(&token))
}

/// `GET /astra/users/{user_ref}`.
pub async fn summary(
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    Ok(HttpResponse::Ok().json(route.users.summary(user).await?))
}

/// `DELETE /astra/users/{user_ref}` → 204.
pub async fn delete(
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    let deleted = route.users.delete(user).await.map_err(Problem::from);
    let actor = Actor::Caller(&admitted.caller);
    route.audit_authorization(actor, user, AuthorizationAction::Deleted, &deleted, false);
    deleted?;
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
    admitted: Admitted,
) -> Result<HttpResponse, Problem> {
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
    let users = match admitted.grant.scope().prefixes() {
        None => route.users.list(status, after.as_ref(), limit).await?,
        Some(prefixes) => {
            list_within(&route.users, prefixes, status, after.as_ref(), limit).await?
        }
    };
    let next_after = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.user_ref.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": users, "next_after": next_after })))
}

/// One page of the users whose `user_ref` starts with one of `prefixes`
/// (sorted, none a prefix of another), in `user_ref` order after `after`.
/// Users with one prefix form one run in `user_ref` order, starting at the
/// prefix itself: each prefix costs at most a look-up of the user named
/// exactly like it and one page read from the store.
async fn list_within(
    users: &UserTokens,
    prefixes: &[String],
    status: Option<UserStatus>,
    after: Option<&UserRef>,
    limit: u32,
) -> Result<Vec<UserSummary>, UserTokenError> {
    let mut page: Vec<UserSummary> = Vec::new();
    let left = |page: &Vec<UserSummary>| {
        limit.saturating_sub(u32::try_from(page.len()).unwrap_or(u32::MAX))
    };
    for prefix in prefixes.iter().map(String::as_str) {
        if left(&page) == 0 {
            break;
        }
        let cursor = match after {
            Some(a) if a.as_str() >= prefix && a.as_str().starts_with(prefix) => a.clone(),
            // Past the cursor already: the whole run is before it.
            Some(a) if a.as_str() >= prefix => continue,
            _ => {
                // The run starts with the user named exactly like the prefix,
                // which `list` (strictly after its cursor) would skip.
                let start = UserRef::parse(prefix).map_err(|_| UserTokenError::InvalidUserRef)?;
                match users.summary(&start).await {
                    Ok(exact) if status.is_none_or(|s| s.as_str() == exact.status) => {
                        page.push(exact);
                    }
                    Ok(_) | Err(UserTokenError::UnknownUser) => {}
                    Err(e) => return Err(e),
                }
                start
            }
        };
        if left(&page) == 0 {
            break;
        }
        let run = users.list(status, Some(&cursor), left(&page)).await?;
        page.extend(
            run.into_iter()
                .take_while(|u| u.user_ref.starts_with(prefix)),
        );
    }
    Ok(page)
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
    route: web::Data<AstraRoutes>,
) -> Result<HttpResponse, Problem> {
    let users = &route.users;
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
    // The callback is audited once the state named a user: before that there
    // is no user to name, and anyone on the internet can call this route.
    if let Ok(awaiting) = &outcome {
        route.audit.astra_authorization(
            Actor::BrowserCallback,
            &awaiting.user_ref,
            AuthorizationAction::Exchanged,
            "ok",
            false,
        );
    }
    let Some(completion) = authorizations.completion_url() else {
        let awaiting = outcome?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "outcome": "confirm",
            "handle": awaiting.handle,
            "expires_in": awaiting.expires_in,
        })));
    };
    Ok(completion_redirect(completion, outcome))
}

/// `303` to the completion URL with the callback's outcome in its query.
fn completion_redirect(
    completion: &Url,
    outcome: Result<AwaitingConfirmation, UserTokenError>,
) -> HttpResponse {
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
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target.as_str()))
        // The handle is a bearer secret until confirmed.
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
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
    route: web::Data<AstraRoutes>,
    admitted: Admitted,
    body: JsonBody,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    let body: ConfirmBody = json(&body)?;
    if body.handle.expose_secret().trim().is_empty() {
        return Err(UserTokenError::BadRequest("a required value is empty").into());
    }
    let row = route
        .users
        .authorizations()
        .confirm(user, body.handle.expose_secret())
        .await
        .map_err(Problem::from);
    let replaced = row.as_ref().is_ok_and(|row| row.generation > 1);
    let actor = Actor::Caller(&admitted.caller);
    route.audit_authorization(actor, user, AuthorizationAction::Completed, &row, replaced);
    row?;
    Ok(HttpResponse::Ok().json(route.users.summary(user).await?))
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
