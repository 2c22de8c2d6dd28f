//! What each internal caller may do. Every identity (a Kubernetes service
//! account, or a named static key) gets an explicit [`Grant`]: a set of
//! [`Permission`]s, optionally limited to `user_ref`s with given prefixes
//! ([`UserRefScope`]), and proxy rules ([`ProxyRule`]). Nothing is allowed
//! without a grant: one credential no longer opens every user's payment
//! authority.
//!
//! The table is `[[internal_auth.grants]]`, checked once at start-up by
//! [`Grants::from_settings`]; `mode = "none"` (dev mode) uses
//! [`Grants::open`], which allows everything.

pub mod proxy;
mod retired;
pub mod scope;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ConfigError, GrantSettings, invalid};
use proxy::{ProxyRule, Upstream};
pub use retired::refuse_retired;
use scope::UserRefScope;

const KEY: &str = "internal_auth.grants";

crate::core::named_enum! {
    /// One thing an internal caller may be allowed to do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Permission {
        /// `GET /astrada-api-token`: full access to the Astrada API.
        AstradaApiToken = "astrada:api_token",
        /// An Astra user's access token, including the stale-generation refresh.
        AstraToken = "astra:token",
        /// Start, complete (code), import and delete Astra authorizations.
        AstraManage = "astra:manage",
        /// Astra user summaries and the user list.
        AstraRead = "astra:read",
    }
}

impl Permission {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether this permission is about Astra users (and so limited by a
    /// grant's `user_ref` scope).
    pub fn is_per_user(self) -> bool {
        !matches!(self, Permission::AstradaApiToken)
    }
}

/// Which identities a grant may name: depends on `internal_auth.mode`.
pub enum Identities<'a> {
    /// `system:serviceaccount:NAMESPACE:NAME`.
    ServiceAccounts,
    /// The names of the configured static keys.
    StaticKeys(&'a [String]),
}

/// One caller's permissions, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    permissions: u8,
    scope: UserRefScope,
    /// `None`: any proxy call (dev mode only).
    proxy: Option<Vec<ProxyRule>>,
}

impl Grant {
    /// Whether the grant holds `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        self.permissions & permission.bit() != 0
    }

    /// The users the Astra permissions cover.
    pub fn scope(&self) -> &UserRefScope {
        &self.scope
    }

    /// Refuses `user_ref` when `permission` is per user and the grant's
    /// prefixes do not cover it (`identity` names the grant's holder).
    pub fn check_user(
        &self,
        identity: &str,
        permission: Permission,
        user_ref: &str,
    ) -> Result<(), Denied> {
        if permission.is_per_user() {
            return self.check_scope(identity, user_ref);
        }
        Ok(())
    }

    /// Refuses `user_ref` when the grant's prefixes do not cover it (the
    /// proxy's per-user route, which needs no permission but proxy rules).
    pub fn check_scope(&self, identity: &str, user_ref: &str) -> Result<(), Denied> {
        if !self.scope.covers(user_ref) {
            return Err(Denied::OutOfScope {
                identity: identity.to_owned(),
                user_ref: user_ref.to_owned(),
            });
        }
        Ok(())
    }

    /// Whether a proxy call of `method` on `path` to `upstream` is allowed.
    pub fn permits_proxy(&self, upstream: Upstream, method: &str, path: &str) -> bool {
        self.proxy.as_ref().is_none_or(|rules| {
            rules
                .iter()
                .any(|rule| rule.permits(upstream, method, path))
        })
    }
}

/// Why an authenticated caller was refused: 403. The text names the missing
/// permission or the out-of-scope `user_ref` (already validated, so plain
/// text), never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("`{identity}` lacks the permission `{permission}` (internal_auth.grants)")]
    Permission {
        identity: String,
        permission: Permission,
    },
    #[error(
        "`{identity}` has no proxy rule for {method} {path} on {upstream} \
         (internal_auth.grants.proxy)"
    )]
    Proxy {
        identity: String,
        upstream: Upstream,
        method: String,
        /// Normalised by the proxy (a closed alphabet, no controls).
        path: String,
    },
    #[error(
        "user_ref `{user_ref}` is outside the user_ref_prefixes granted to `{identity}` \
         (internal_auth.grants)"
    )]
    OutOfScope { identity: String, user_ref: String },
}

impl Denied {
    /// The metric label of the refusal's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Permission { .. } => "permission",
            Denied::OutOfScope { .. } => "user_ref_scope",
            Denied::Proxy { .. } => "proxy_rule",
        }
    }
}

/// Every caller's grant.
pub struct Grants {
    by_identity: HashMap<String, Arc<Grant>>,
    /// Dev mode: the grant of everyone.
    open: Option<Arc<Grant>>,
}

impl Grants {
    /// Everything allowed to everyone (`internal_auth.mode = "none"`).
    pub fn open() -> Self {
        let all = Permission::ALL.iter().fold(0, |bits, p| bits | p.bit());
        Self {
            by_identity: HashMap::new(),
            open: Some(Arc::new(Grant {
                permissions: all,
                scope: UserRefScope::All,
                proxy: None,
            })),
        }
    }

    /// Checks `[[internal_auth.grants]]`: every identity of the right kind,
    /// once; known permissions; at least one permission or proxy rule;
    /// well-formed prefixes and proxy rules.
    pub fn from_settings(
        grants: &[GrantSettings],
        identities: Identities<'_>,
    ) -> Result<Self, ConfigError> {
        if grants.is_empty() {
            return invalid(
                KEY,
                "is empty, so no caller may do anything on the internal listener".into(),
                "add one [[internal_auth.grants]] table per caller with the permissions it needs \
                 (docs/security/grants.md), e.g. identity = \"system:serviceaccount:payments:billing\", \
                 permissions = [\"astrada:api_token\"]",
            );
        }
        let mut by_identity = HashMap::with_capacity(grants.len());
        for (entry, settings) in grants.iter().enumerate() {
            let identity = settings.identity.as_str();
            check_identity(entry, identity, &identities)?;
            let grant = grant(entry, settings)?;
            if by_identity
                .insert(identity.to_owned(), Arc::new(grant))
                .is_some()
            {
                return invalid(
                    KEY,
                    format!("entry {entry}: `{identity}` has a grant already"),
                    "give each identity exactly one [[internal_auth.grants]] table; merge the two",
                );
            }
        }
        if let Identities::StaticKeys(names) = identities
            && let Some(name) = names.iter().find(|n| !by_identity.contains_key(*n))
        {
            return invalid(
                KEY,
                format!("the static key `{name}` has no grant, so it could do nothing"),
                "add a [[internal_auth.grants]] table with identity = the key's name, or remove \
                 the key from internal_auth.static_keys.keys",
            );
        }
        Ok(Self {
            by_identity,
            open: None,
        })
    }

    /// The grant of `identity`, if it has one.
    pub fn of(&self, identity: &str) -> Option<&Arc<Grant>> {
        self.open
            .as_ref()
            .or_else(|| self.by_identity.get(identity))
    }

    /// `identity`'s grant if it holds `permission` (whose `user_ref`s it
    /// covers is [`Grant::check_user`]'s question).
    pub fn check(&self, identity: &str, permission: Permission) -> Result<&Arc<Grant>, Denied> {
        self.of(identity)
            .filter(|g| g.allows(permission))
            .ok_or_else(|| Denied::Permission {
                identity: identity.to_owned(),
                permission,
            })
    }
}

fn grant(entry: usize, settings: &GrantSettings) -> Result<Grant, ConfigError> {
    let identity = settings.identity.as_str();
    let mut permissions = 0;
    for name in &settings.permissions {
        let Some(permission) = Permission::ALL.into_iter().find(|p| p.as_str() == name) else {
            let hint = if name.starts_with("proxy") {
                "proxy access is granted with [[internal_auth.grants.proxy]] tables (upstream, \
                 methods, paths), not a permission name"
            } else {
                "use astrada:api_token, astra:token, astra:manage or astra:read"
            };
            return invalid(
                KEY,
                format!("entry {entry} (`{identity}`): `{name}` is not a permission"),
                hint,
            );
        };
        permissions |= permission.bit();
    }
    let proxy = settings
        .proxy
        .iter()
        .map(|rule| ProxyRule::from_settings(entry, identity, rule))
        .collect::<Result<Vec<_>, _>>()?;
    if permissions == 0 && proxy.is_empty() {
        return invalid(
            KEY,
            format!("entry {entry} (`{identity}`) grants nothing"),
            "list at least one permission (astrada:api_token, astra:token, astra:manage, \
             astra:read), or remove the entry",
        );
    }
    Ok(Grant {
        permissions,
        scope: UserRefScope::from_settings(entry, identity, &settings.user_ref_prefixes)?,
        proxy: Some(proxy),
    })
}

/// Whether `subject` is `system:serviceaccount:NAMESPACE:NAME`.
pub fn is_service_account(subject: &str) -> bool {
    let parts: Vec<&str> = subject.split(':').collect();
    matches!(parts.as_slice(), ["system", "serviceaccount", ns, name] if !ns.is_empty() && !name.is_empty())
}

fn check_identity(
    entry: usize,
    identity: &str,
    identities: &Identities<'_>,
) -> Result<(), ConfigError> {
    match identities {
        Identities::ServiceAccounts if !is_service_account(identity) => invalid(
            KEY,
            format!(
                "entry {entry}: identity `{}` is not system:serviceaccount:NAMESPACE:NAME \
                 (internal_auth.mode is \"kubernetes\")",
                crate::core::escape_controls(identity)
            ),
            "use e.g. \"system:serviceaccount:payments:billing\"",
        ),
        Identities::StaticKeys(names) if !names.iter().any(|n| n == identity) => invalid(
            KEY,
            format!(
                "entry {entry}: identity `{}` names no key in internal_auth.static_keys.keys \
                 (internal_auth.mode is \"static_keys\")",
                crate::core::escape_controls(identity)
            ),
            "use the name of a [[internal_auth.static_keys.keys]] entry",
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(identity: &str, permissions: &[&str], prefixes: &[&str]) -> GrantSettings {
        GrantSettings {
            identity: identity.into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            user_ref_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
            proxy: Vec::new(),
        }
    }

    const BILLING: &str = "system:serviceaccount:payments:billing";

    #[test]
    fn a_caller_gets_exactly_its_permissions_within_its_prefixes() {
        let grants = Grants::from_settings(
            &[settings(BILLING, &["astra:token"], &["tenant-a:"])],
            Identities::ServiceAccounts,
        )
        .unwrap();
        let token = Permission::AstraToken;
        let grant = grants.check(BILLING, token).unwrap();
        assert!(grant.check_user(BILLING, token, "tenant-a:alice").is_ok());
        assert_eq!(
            grant.check_user(BILLING, token, "tenant-b:bob"),
            Err(Denied::OutOfScope {
                identity: BILLING.into(),
                user_ref: "tenant-b:bob".into()
            })
        );
        let denied = grants.check(BILLING, Permission::AstraManage).unwrap_err();
        assert!(denied.to_string().contains("`astra:manage`"), "{denied}");
        assert!(
            grants.check("system:serviceaccount:x:y", token).is_err(),
            "no grant, nothing allowed"
        );
    }

    #[test]
    fn the_open_grant_allows_everything() {
        let grants = Grants::open();
        for p in Permission::ALL {
            let grant = grants.check("anonymous", p).unwrap();
            assert!(grant.check_user("anonymous", p, "anyone").is_ok());
        }
        assert!(
            grants
                .of("x")
                .unwrap()
                .permits_proxy(Upstream::Astra, "DELETE", "/x")
        );
    }

    #[test]
    fn unknown_permissions_empty_grants_and_duplicates_are_refused() {
        let refused = |grants: &[GrantSettings]| {
            Grants::from_settings(grants, Identities::ServiceAccounts)
                .err()
                .expect("refused")
                .to_string()
        };
        let e = refused(&[settings(BILLING, &["astra:tokens"], &[])]);
        assert!(e.contains("`astra:tokens` is not a permission"), "{e}");
        let e = refused(&[settings(BILLING, &["proxy"], &[])]);
        assert!(e.contains("[[internal_auth.grants.proxy]]"), "{e}");
        let e = refused(&[settings(BILLING, &[], &[])]);
        assert!(e.contains("grants nothing"), "{e}");
        let e = refused(&[
            settings(BILLING, &["astra:read"], &[]),
            settings(BILLING, &["astra:token"], &[]),
        ]);
        assert!(
            e.contains("entry 1: `system:serviceaccount:payments:billing` has a grant already"),
            "{e}"
        );
        let e = refused(&[settings("billing", &["astra:read"], &[])]);
        assert!(
            e.contains("not system:serviceaccount:NAMESPACE:NAME"),
            "{e}"
        );
        let e = refused(&[]);
        assert!(e.contains("internal_auth.grants"), "{e}");
    }

    #[test]
    fn static_key_grants_name_configured_keys_and_every_key_has_one() {
        let names = ["ops-cli".to_owned(), "reporting".to_owned()];
        let keys = || Identities::StaticKeys(&names);
        let e = Grants::from_settings(&[settings("ops", &["astra:read"], &[])], keys())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("names no key"), "{e}");
        let e = Grants::from_settings(&[settings("ops-cli", &["astra:read"], &[])], keys())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`reporting` has no grant"), "{e}");
        assert!(
            Grants::from_settings(
                &[
                    settings("ops-cli", &["astra:read"], &[]),
                    settings("reporting", &["astra:read"], &[]),
                ],
                keys()
            )
            .is_ok()
        );
    }
}
