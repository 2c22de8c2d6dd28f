//! The grants table is checked once at start-up: every mistake names
//! `internal_auth.grants` and the fix, and the retired flat allowlists are
//! refused with the grants that would give the same access, never read as
//! "everything allowed".

use astrada_token_vendor::config::InternalAuthMode;

use crate::config::{BILLING_GRANT, case};

const GRANTS: &str = "ATV_INTERNAL_AUTH__GRANTS";

#[test]
fn grants_are_read_from_a_file_as_an_array_of_tables() {
    case(|c| {
        c.with_credentials().with_auth_but_grants();
        c.file(
            "atv.toml",
            r#"
[[internal_auth.grants]]
identity = "system:serviceaccount:billing:api-client"
permissions = ["astrada:api_token"]

[[internal_auth.grants]]
identity = "system:serviceaccount:tenant-a:payments"
permissions = ["astra:token", "astra:read"]
user_ref_prefixes = ["tenant-a:"]

[[internal_auth.grants.proxy]]
upstream = "astra"
methods = ["GET"]
paths = ["/v1/accounts/*", "/v1/transfers/**"]
"#,
        );
        let s = c.accepted();
        let grants = &s.internal_auth.grants;
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[1].user_ref_prefixes, ["tenant-a:"]);
        assert_eq!(grants[1].proxy[0].paths.len(), 2);
        // The environment wins over the file, as a whole list.
        c.set(GRANTS, "[]").refused_naming("internal_auth.grants");
    });
}

#[test]
fn grants_are_read_from_the_environment_as_inline_tables() {
    case(|c| {
        c.with_credentials().with_auth();
        c.set(
            GRANTS,
            r#"[{identity = "system:serviceaccount:ops:cli", permissions = ["astra:manage", "astra:read"], user_ref_prefixes = ["tenant-a:", "tenant-b:"]}]"#,
        );
        let s = c.accepted();
        assert_eq!(s.internal_auth.grants[0].permissions.len(), 2);
        assert_eq!(s.internal_auth.grants[0].user_ref_prefixes.len(), 2);
    });
}

#[test]
fn each_mistake_in_the_grants_names_the_key_and_the_fix() {
    let sa = "system:serviceaccount:payments:billing";
    for (grants, problem, fix) in [
        (
            format!(r#"[{{identity = "{sa}", permissions = ["astra:tokens"]}}]"#),
            "`astra:tokens` is not a permission",
            "use astrada:api_token, astra:token, astra:manage or astra:read",
        ),
        (
            format!(r#"[{{identity = "{sa}", permissions = []}}]"#),
            "grants nothing",
            "list at least one permission",
        ),
        (
            format!(
                r#"[{{identity = "{sa}", permissions = ["astra:read"]}}, {{identity = "{sa}", permissions = ["astra:token"]}}]"#
            ),
            "has a grant already",
            "merge the two",
        ),
        (
            format!(
                r#"[{{identity = "{sa}", permissions = ["astra:read"], user_ref_prefixes = ["tenant a"]}}]"#
            ),
            "user_ref_prefixes holds a prefix that is",
            "use prefixes of 1-128 characters",
        ),
        (
            format!(
                r#"[{{identity = "{sa}", permissions = ["astra:read"], proxy = [{{upstream = "astrada", methods = ["GET"], paths = ["/v1/**/x"]}}]}}]"#
            ),
            "has `**` before its last segment",
            "`**` as the last segment",
        ),
        (
            r#"[{identity = "billing", permissions = ["astra:read"]}]"#.to_owned(),
            "is not system:serviceaccount:NAMESPACE:NAME",
            "use e.g. \"system:serviceaccount:payments:billing\"",
        ),
    ] {
        case(|c| {
            c.with_credentials().with_auth();
            let text = c
                .set(GRANTS, &grants)
                .refused_naming("`internal_auth.grants`");
            assert!(text.contains(problem), "{grants}: {text}");
            assert!(text.contains(fix), "{grants}: {text}");
        });
    }
}

#[test]
fn the_retired_allowed_subjects_list_is_refused_with_the_same_access_as_grants() {
    case(|c| {
        c.with_credentials().with_auth();
        let text = c
            .set(
                "ATV_INTERNAL_AUTH__KUBERNETES__ALLOWED_SUBJECTS",
                r#"["system:serviceaccount:payments:billing", "system:serviceaccount:ops:cli"]"#,
            )
            .refused_naming("`internal_auth.kubernetes.allowed_subjects`");
        assert!(text.contains("[[internal_auth.grants]]"), "{text}");
        assert!(
            text.contains("identity = \"system:serviceaccount:ops:cli\""),
            "{text}"
        );
        assert!(
            text.contains(
                r#"permissions = ["astrada:api_token", "astra:token", "astra:manage", "astra:read"]"#
            ),
            "the same access as before: {text}"
        );
        // Whatever the mode: dev mode must not silently read it either.
        c.set("ATV_INTERNAL_AUTH__MODE", "none")
            .set("ATV_INTERNAL_AUTH__ALLOW_UNAUTHENTICATED", "true")
            .refused_naming("`internal_auth.kubernetes.allowed_subjects`");
    });
}

#[test]
fn anonymous_key_hashes_are_refused_with_named_keys_and_grants_to_write_instead() {
    let hash = "1dfd22af6c6c273e8880494a39c064fbad8b65b0c67373fa3df592c44ad8ef4d";
    case(|c| {
        c.with_credentials().with_auth();
        c.set("ATV_INTERNAL_AUTH__MODE", "static_keys");
        let text = c
            .set(
                "ATV_INTERNAL_AUTH__STATIC_KEYS__KEY_HASHES",
                format!(r#"["{hash}"]"#),
            )
            .refused_naming("`internal_auth.static_keys.key_hashes`");
        assert!(
            text.contains("[[internal_auth.static_keys.keys]]"),
            "{text}"
        );
        assert!(text.contains("identity = \"key-1\""), "{text}");
        assert!(
            !text.contains(hash),
            "configured hashes are not echoed: {text}"
        );
    });
}

#[test]
fn dev_mode_allows_everything_whatever_the_grants() {
    case(|c| {
        c.with_credentials().with_auth();
        c.set("ATV_INTERNAL_AUTH__MODE", "none")
            .set("ATV_INTERNAL_AUTH__ALLOW_UNAUTHENTICATED", "true")
            .set(GRANTS, BILLING_GRANT);
        assert_eq!(c.accepted().internal_auth.mode, InternalAuthMode::None);
    });
}
