//! `grant-reader`: a PostgreSQL role that may read the reporting views and nothing else.
//!
//! The role gets `USAGE` on schema `public`, `SELECT` on the views of [`READER_VIEWS`] and
//! `EXECUTE` on the functions of [`READER_FUNCTIONS`]; the views and the function read the
//! tables with their owner's rights, so the role needs no right on a table. A role created
//! here logs in with a password that is sent to the server as a SCRAM-SHA-256 verifier
//! computed here, as `psql`'s `\password` does, so the password itself appears in no
//! statement, server log or `pg_stat_activity`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::store::{query_error, Pools, Store, StoreError};

/// The views a reader may select from: the reporting contract of `docs/reporting.md`.
pub const READER_VIEWS: &[&str] = &[
    "registries_current",
    "registry_changes",
    "registry_inventory_summary",
    "sync_health",
];

/// The functions a reader may call, with their argument types.
pub const READER_FUNCTIONS: &[&str] = &["registries_as_of(timestamptz)"];

/// PBKDF2 iterations of the verifier: PostgreSQL's own default (`scram_iterations`).
const SCRAM_ITERATIONS: u32 = 4096;

/// Role names PostgreSQL reserves or gives another meaning in `GRANT ... TO`.
const RESERVED_ROLES: &[&str] = &[
    "public",
    "none",
    "current_role",
    "current_user",
    "session_user",
];

/// Why a reader role could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The role name cannot be a PostgreSQL role.
    #[error("invalid role name {name:?}: {reason}")]
    InvalidRole {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database is SQLite, which has no roles.
    #[error("the database is SQLite, which has no roles: grant-reader works on PostgreSQL only")]
    NotPostgres,
    /// The role does not exist and `--create` was not given.
    #[error("role {0:?} does not exist (add --create to create it, with its password in HSS_SYNC_READER_PASSWORD)")]
    RoleMissing(String),
    /// `--create` was given for a role that exists.
    #[error("role {0:?} exists already (run without --create to grant it read access; its password is left as it is)")]
    RoleExists(String),
    /// The reporting views or function are missing.
    #[error("the database has no {} (run `hss-sync migrate` with this version first)", .0.join(", "))]
    MissingObjects(Vec<String>),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A role name checked to be usable as a PostgreSQL role; always quoted in SQL, so its case
/// is kept (`Grafana` and `grafana` are two roles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderRole(String);

impl ReaderRole {
    /// Checks `name`: 1 to 63 bytes, no NUL or control character, not reserved, not
    /// starting with `pg_`.
    ///
    /// # Errors
    ///
    /// [`GrantError::InvalidRole`] naming what is wrong.
    pub fn parse(name: &str) -> Result<ReaderRole, GrantError> {
        let invalid = |reason| GrantError::InvalidRole {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > 63 {
            return Err(invalid("PostgreSQL names are at most 63 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("it holds a control character"));
        }
        if name.to_ascii_lowercase().starts_with("pg_") {
            return Err(invalid("names starting with pg_ are reserved"));
        }
        if RESERVED_ROLES.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid("PostgreSQL reserves it"));
        }
        Ok(ReaderRole(name.to_owned()))
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

/// What `grant-reader` does: grant read access to `role`, creating it first when it has a
/// password.
#[derive(Debug)]
pub struct GrantPlan {
    /// The role.
    pub role: ReaderRole,
    /// With `--create`: the new role's password.
    pub create_with_password: Option<SecretString>,
}

impl GrantPlan {
    /// The statements, as printed: the password is shown as `'***'`.
    pub fn statements_shown(&self) -> Vec<String> {
        self.statements("'***'")
    }

    fn statements(&self, password_literal: &str) -> Vec<String> {
        let role = self.role.quoted();
        let mut statements = Vec::new();
        if self.create_with_password.is_some() {
            statements.push(format!(
                "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {password_literal}"
            ));
        }
        statements.push(format!("GRANT USAGE ON SCHEMA public TO {role}"));
        statements.push(format!(
            "GRANT SELECT ON {} TO {role}",
            READER_VIEWS.join(", ")
        ));
        for function in READER_FUNCTIONS {
            statements.push(format!("GRANT EXECUTE ON FUNCTION {function} TO {role}"));
        }
        statements
    }
}

impl Store {
    /// Grants `plan.role` read access to the reporting views, creating the role first when
    /// the plan has a password, in one transaction; returns the statements as
    /// [`GrantPlan::statements_shown`] gives them.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotPostgres`] on SQLite; [`GrantError::RoleMissing`] or
    /// [`GrantError::RoleExists`] when the role's existence is not what the plan expects;
    /// [`GrantError::MissingObjects`] before the reporting migration; [`GrantError::Store`]
    /// when the database fails (a user that may not create roles or grant, say).
    pub async fn grant_reader(&self, plan: &GrantPlan) -> Result<Vec<String>, GrantError> {
        match &self.0 {
            Pools::Sqlite(_) => Err(GrantError::NotPostgres),
            Pools::Postgres(pool) => grant(pool, plan).await,
        }
    }
}

async fn grant(pool: &PgPool, plan: &GrantPlan) -> Result<Vec<String>, GrantError> {
    const CONTEXT: &str = "granting read access";
    let mut tx = pool.begin().await.map_err(query_error(CONTEXT))?;
    let mut missing = Vec::new();
    for view in READER_VIEWS {
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("public.{view}"))
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
        if found.is_none() {
            missing.push(format!("view {view}"));
        }
    }
    for function in READER_FUNCTIONS {
        let found: Option<String> = sqlx::query_scalar("SELECT to_regprocedure($1)::text")
            .bind(format!("public.{function}"))
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
        if found.is_none() {
            missing.push(format!("function {function}"));
        }
    }
    if !missing.is_empty() {
        return Err(GrantError::MissingObjects(missing));
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(plan.role.name())
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
    let password_literal = match (&plan.create_with_password, exists) {
        (Some(_), true) => return Err(GrantError::RoleExists(plan.role.name().to_owned())),
        (None, false) => return Err(GrantError::RoleMissing(plan.role.name().to_owned())),
        (Some(password), false) => {
            let salt: [u8; 16] = rand::random();
            format!(
                "'{}'",
                scram_verifier(password.expose_secret(), &salt, SCRAM_ITERATIONS)
            )
        }
        (None, true) => String::new(),
    };
    // DDL takes no bind parameters: the role is a quoted identifier, and the password a
    // verifier of base64 characters and `$`, `:`, which need no escaping in a literal.
    for statement in plan.statements(&password_literal) {
        sqlx::query(&statement)
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
    }
    tx.commit().await.map_err(query_error(CONTEXT))?;
    Ok(plan.statements_shown())
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677):
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. The password is prepared
/// with SASLprep where it can be, as the server does, and used as it is otherwise.
pub(crate) fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_owned());
    let salted = pbkdf2_sha256(prepared.as_bytes(), salt, iterations);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    )
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one 32-byte block, as SCRAM's `Hi()` is defined.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password, &block);
    let mut result = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &u);
        for (r, x) in result.iter_mut().zip(u) {
            *r ^= x;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_quoted_and_bad_ones_refused_with_the_reason() {
        assert_eq!(
            ReaderRole::parse("grafana").unwrap().quoted(),
            "\"grafana\""
        );
        assert_eq!(
            ReaderRole::parse("we\"ird").unwrap().quoted(),
            "\"we\"\"ird\""
        );
        for (name, reason) in [
            ("", "empty"),
            ("pg_monitor", "pg_"),
            ("PUBLIC", "reserves"),
            ("a\nb", "control"),
            (&"x".repeat(64), "63 bytes"),
        ] {
            let error = ReaderRole::parse(name).unwrap_err().to_string();
            assert!(error.contains(reason), "{name:?}: {error}");
        }
    }

    #[test]
    fn the_shown_statements_hold_no_password_and_grant_only_the_views_and_function() {
        let plan = GrantPlan {
            role: ReaderRole::parse("grafana").unwrap(),
            create_with_password: Some(SecretString::from("s3cret")),
        };
        let shown = plan.statements_shown().join(";\n");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            shown,
            "CREATE ROLE \"grafana\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '***';\n\
             GRANT USAGE ON SCHEMA public TO \"grafana\";\n\
             GRANT SELECT ON registries_current, registry_changes, registry_inventory_summary, sync_health TO \"grafana\";\n\
             GRANT EXECUTE ON FUNCTION registries_as_of(timestamptz) TO \"grafana\""
        );
    }

    #[test]
    fn the_verifier_answers_the_rfc_7677_exchange() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = scram_verifier("pencil", &salt, 4096);
        let (head, keys) = verifier.rsplit_once('$').unwrap();
        assert_eq!(head, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==");
        let (stored_key, server_key) = keys.split_once(':').unwrap();
        let (stored_key, server_key) = (
            BASE64.decode(stored_key).unwrap(),
            BASE64.decode(server_key).unwrap(),
        );
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_message = format!(
            "n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
        );
        // The server's signature proves ServerKey.
        assert_eq!(
            BASE64.encode(hmac_sha256(&server_key, auth_message.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // The client's proof, less the signature made with StoredKey, is a key hashing to it.
        let proof = BASE64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        assert_eq!(Sha256::digest(&client_key).to_vec(), stored_key);
    }

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1), first 32 bytes.
        assert_eq!(
            hex::encode(pbkdf2_sha256(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }
}
