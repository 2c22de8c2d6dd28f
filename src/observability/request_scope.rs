//! The request being handled on this thread: its id for log lines, and the
//! client address for the limits and the audit. The HTTP layer puts it in
//! place around each poll of a request's future; the log formatter reads it
//! only when a line is written. A tracing span per request carried the id
//! before, and cost its creation and an enter and exit on every poll of
//! every request, whether a line was written or not.

use std::cell::Cell;
use std::net::IpAddr;

use actix_web::http::header::HeaderValue;

/// What log lines and handlers need to know about the request in hand.
#[derive(Debug, Clone)]
pub struct RequestScope {
    /// Echoed in `x-request-id`; only `[A-Za-z0-9-_.:]`, so it never needs
    /// escaping in a log line.
    pub id: HeaderValue,
    /// The client address, resolved through `server.trusted_proxies`.
    pub client: Option<IpAddr>,
}

thread_local! {
    static CURRENT: Cell<Option<RequestScope>> = const { Cell::new(None) };
}

/// Puts a scope back where it came from when the poll that entered it ends,
/// however it ends.
pub struct Entered<'a> {
    slot: &'a mut Option<RequestScope>,
    previous: Option<RequestScope>,
}

impl RequestScope {
    /// Makes the scope in `slot` this thread's current one until the guard
    /// is dropped; `slot` holds it again afterwards.
    pub fn enter(slot: &mut Option<RequestScope>) -> Entered<'_> {
        let previous = CURRENT.replace(slot.take());
        Entered { slot, previous }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        *self.slot = CURRENT.replace(self.previous.take());
    }
}

/// Runs `f` with the scope of the request being handled on this thread, if
/// any. A nested call (a line logged while one is formatted) sees none.
pub fn with_current<R>(f: impl FnOnce(Option<&RequestScope>) -> R) -> R {
    let scope = CURRENT.take();
    let result = f(scope.as_ref());
    CURRENT.set(scope);
    result
}

/// The id of the request being handled on this thread, as text.
pub fn current_id() -> Option<String> {
    with_current(|scope| scope.and_then(|s| s.id.to_str().ok().map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(id: &'static str) -> Option<RequestScope> {
        Some(RequestScope {
            id: HeaderValue::from_static(id),
            client: None,
        })
    }

    #[test]
    fn a_scope_is_current_while_entered_and_nests() {
        let (mut outer, mut inner) = (scope("outer"), scope("inner"));
        assert_eq!(current_id(), None);
        {
            let _outer = RequestScope::enter(&mut outer);
            assert_eq!(current_id().as_deref(), Some("outer"));
            {
                let _inner = RequestScope::enter(&mut inner);
                assert_eq!(current_id().as_deref(), Some("inner"));
            }
            assert_eq!(current_id().as_deref(), Some("outer"));
        }
        assert_eq!(current_id(), None);
        assert!(
            outer.is_some() && inner.is_some(),
            "each slot has its scope back"
        );
    }
}
