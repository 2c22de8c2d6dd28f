//! The flat allowlists that grants replaced. Each gave every listed caller
//! every permission; left in a configuration they would read as "allowed"
//! while granting nothing, or, worse, be mistaken for today's meaning. So
//! they are refused, with the grants that would give the same access.

use crate::config::{ConfigError, InternalAuthSettings, invalid};

use super::{Permission, is_service_account};

/// Refuses `internal_auth.kubernetes.allowed_subjects` and
/// `internal_auth.static_keys.key_hashes`, whatever the mode.
pub fn refuse_retired(settings: &InternalAuthSettings) -> Result<(), ConfigError> {
    let all = Permission::ALL
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let subjects = &settings.kubernetes.allowed_subjects;
    if !subjects.is_empty() {
        return refuse_allowed_subjects(subjects, &all);
    }
    let hashes = &settings.static_keys.key_hashes;
    if !hashes.is_empty() {
        return refuse_key_hashes(hashes, &all);
    }
    Ok(())
}

/// The grants that give each listed service account what it had: `all`.
fn refuse_allowed_subjects(subjects: &[String], all: &str) -> Result<(), ConfigError> {
    let tables: String = subjects
        .iter()
        .map(|subject| {
            // Only a well-formed account is echoed (its alphabet is safe).
            let identity = if is_service_account(subject)
                && subject
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
            {
                subject.as_str()
            } else {
                "system:serviceaccount:NAMESPACE:NAME"
            };
            format!(
                "\n  [[internal_auth.grants]]\n  identity = \"{identity}\"\n  permissions = [{all}]"
            )
        })
        .collect();
    invalid(
        "internal_auth.kubernetes.allowed_subjects",
        "is no longer read: it gave every listed service account every permission (the \
         API token, and every Astra user's token and authorization); each caller now needs a \
         grant in internal_auth.grants"
            .into(),
        &format!(
            "remove allowed_subjects and write one grant per service account. The same access \
             as before is:{tables}\nthen keep only the permissions each workload needs \
             (docs/security/grants.md)"
        ),
    )
}

/// Names and grants that give each anonymous key what it had: `all`.
fn refuse_key_hashes(hashes: &[String], all: &str) -> Result<(), ConfigError> {
    let tables: String = (1..=hashes.len())
        .map(|n| {
            format!(
                "\n  [[internal_auth.static_keys.keys]]\n  name = \"key-{n}\"   # name the caller\n  \
                 sha256 = \"…entry {} of key_hashes…\"\n  [[internal_auth.grants]]\n  \
                 identity = \"key-{n}\"\n  permissions = [{all}]",
                n - 1
            )
        })
        .collect();
    invalid(
        "internal_auth.static_keys.key_hashes",
        "is no longer read: its keys were anonymous and each could do everything on the \
         internal listener; keys now have names and grants"
            .into(),
        &format!(
            "remove key_hashes and name each key, with a grant for it. The same access as \
             before is:{tables}\nthen keep only the permissions each caller needs \
             (docs/security/grants.md)"
        ),
    )
}
