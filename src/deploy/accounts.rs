//! The metastore's accounts: Hive and Hue each get a MySQL user of their
//! own, limited to their database and to TLS, created by `lakectl up`
//! before the EMR stack through the RDS Data API with the master secret.
//! The master secret never reaches an EMR node; each account's password is
//! a secret the metastore stack generates and EMR reads by ARN.
//!
//! Owns: the statements and running them (idempotent: `IF NOT EXISTS`,
//! then the password set again, so a rotated secret takes effect on the
//! next `up`). Must not: create stacks or secrets (the metastore stack
//! does). A development metastore (`capacity.mode: single-instance`, no
//! Data API) has no accounts of its own: Hive and Hue use its master user.

use std::collections::BTreeMap;

use super::DeployError;
use crate::aws::Aws;

/// One account: user, its database, its password.
pub struct Account<'a> {
    pub user: &'a str,
    pub database: &'a str,
    pub password: &'a str,
}

/// The statements that make `account` exist as specified. Names come from
/// the spec (validated identifiers) and passwords are letters and digits
/// (the secrets exclude punctuation), so nothing here needs escaping;
/// anything else is refused rather than quoted.
pub fn statements(account: &Account<'_>) -> Result<Vec<String>, DeployError> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    for (what, value) in [
        ("user", account.user),
        ("database", account.database),
        ("password", account.password),
    ] {
        if !plain(value) {
            return Err(DeployError::UnsafeAccount {
                user: account.user.to_string(),
                what,
            });
        }
    }
    let (user, db, pw) = (account.user, account.database, account.password);
    Ok(vec![
        format!("CREATE DATABASE IF NOT EXISTS `{db}`"),
        format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{pw}' REQUIRE SSL"),
        format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{pw}' REQUIRE SSL"),
        format!("GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'%'"),
    ])
}

/// Make the Hive and Hue accounts exist on the cluster the metastore stack
/// outputs describe; returns the users ensured (none for a development
/// metastore).
pub async fn ensure(
    aws: &Aws,
    outputs: &BTreeMap<String, String>,
) -> Result<Vec<String>, DeployError> {
    let Some(cluster) = outputs.get("MetastoreClusterArn") else {
        return Ok(Vec::new());
    };
    let get = |name: &str| {
        outputs
            .get(name)
            .cloned()
            .ok_or_else(|| DeployError::MissingOutput {
                stack: "metastore".into(),
                output: name.into(),
                then: "run `lakectl up` again to update it".into(),
            })
    };
    let master = get("MetastoreSecretArn")?;
    let mut ensured = Vec::new();
    for (user_out, secret_out, database_out) in [
        (
            "MetastoreHiveUser",
            "MetastoreHiveSecretArn",
            "MetastoreHiveDatabase",
        ),
        (
            "MetastoreHueUser",
            "MetastoreHueSecretArn",
            "MetastoreHueDatabase",
        ),
    ] {
        let user = get(user_out)?;
        let database = get(database_out)?;
        let secret = get(secret_out)?;
        let password = aws
            .secrets
            .get_secret_value()
            .secret_id(&secret)
            .send()
            .await
            .map_err(|e| crate::aws::aws_error(format!("reading {secret}"), e))?
            .secret_string()
            .unwrap_or_default()
            .to_string();
        let account = Account {
            user: &user,
            database: &database,
            password: &password,
        };
        for sql in statements(&account)? {
            aws.rdsdata
                .execute_statement()
                .resource_arn(cluster)
                .secret_arn(&master)
                .sql(&sql)
                .send()
                .await
                .map_err(|e| {
                    // The statement holds a password: name the account, not the SQL.
                    crate::aws::aws_error(
                        format!("creating the metastore account {user} through the RDS Data API on {cluster}"),
                        e,
                    )
                })?;
        }
        ensured.push(user);
    }
    Ok(ensured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_limited_to_their_database_and_tls() {
        let sql = statements(&Account {
            user: "hive",
            database: "hive",
            password: "Abc123",
        })
        .unwrap();
        assert_eq!(
            sql,
            [
                "CREATE DATABASE IF NOT EXISTS `hive`",
                "CREATE USER IF NOT EXISTS 'hive'@'%' IDENTIFIED BY 'Abc123' REQUIRE SSL",
                "ALTER USER 'hive'@'%' IDENTIFIED BY 'Abc123' REQUIRE SSL",
                "GRANT ALL PRIVILEGES ON `hive`.* TO 'hive'@'%'",
            ]
        );
        for bad in ["pa'ss", "pa ss", ""] {
            assert!(statements(&Account {
                user: "hue",
                database: "huedb",
                password: bad
            })
            .is_err());
        }
    }
}
