//! [`JsonBody`]: the body of a request to the internal listener, read within
//! `server.max_body_bytes` as it arrives. The limit holds for a chunked body
//! too (no `Content-Length` to check up front), and a non-empty body must
//! say `Content-Type: application/json`: an HTML form or a `text/plain`
//! post, which a web page can send without a CORS preflight, is refused
//! before any handler reads it.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures::StreamExt;
use futures::future::LocalBoxFuture;

use super::limits::RequestLimits;
use super::problem::{HttpError, Problem};

/// A request body of at most `server.max_body_bytes`, JSON when not empty.
pub struct JsonBody(Bytes);

impl Deref for JsonBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for JsonBody {
    type Error = Problem;
    type Future = LocalBoxFuture<'static, Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<RequestLimits>()
            .map_or(0, |limits| limits.max_body_bytes);
        let declared_json = is_json(req);
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| HttpError::BodyUnreadable)?;
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(HttpError::PayloadTooLarge { limit }.into());
                }
                body.extend_from_slice(&chunk);
            }
            if !body.is_empty() && !declared_json {
                return Err(HttpError::NotJson.into());
            }
            Ok(JsonBody(body.freeze()))
        })
    }
}

/// Whether the request's media type is `application/json` (parameters
/// such as `charset` aside).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}
