//! The EMR bootstrap action that makes every node trust the RDS certificate
//! authorities, and the client settings that use it (the metastore requires
//! TLS: `require_secure_transport=ON`).
//!
//! Owns: the script, its content-addressed key in the artifacts bucket, the
//! bundle's URL and path, and Hue's database `options`. Must not: publish
//! (the deployer puts the script at its key before the EMR stack) or talk
//! to AWS.

use sha2::{Digest, Sha256};

/// Where AWS publishes the RDS CA bundle of every region (RDS user guide,
/// "Using SSL/TLS to encrypt a connection to a DB instance").
pub const RDS_CA_URL: &str = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";

/// Where the nodes keep it.
pub const RDS_CA_PATH: &str = "/etc/pki/rds/global-bundle.pem";

/// Where the nodes keep the MySQL client options Hue reads
/// (`read_default_file`): the CA, and the server's certificate checked
/// against the host name.
pub const HUE_MYSQL_CNF_PATH: &str = "/etc/pki/rds/hue-mysql.cnf";

/// The MySQL client option file Hue's connections read: verify the
/// metastore's certificate chain (`ssl-ca`) *and* its name. With only
/// `ssl.ca` in Hue's options, mysqlclient (1.4.6, Hue 4.11's pin, and 2.3)
/// over libmariadb checks the chain but accepts any name the RDS CAs
/// signed (docs/verification.md, "Hue's database TLS"). `=1` is required:
/// libmariadb ignores the bare flag. `ssl-mode` is MySQL 8's spelling for a
/// Hue built on Oracle's library (libmariadb ignores it).
pub fn hue_client_cnf(ca_path: &str) -> String {
    format!("[client]\nssl-ca={ca_path}\nssl-verify-server-cert=1\nssl-mode=VERIFY_IDENTITY\n")
}

/// The bootstrap script (`$1` the bundle's URL, `$2` where it goes, `$3`
/// where Hue's MySQL client options go).
pub fn rds_ca_script() -> String {
    format!(
        r#"#!/bin/bash
# Created by lakectl: this EMR node trusts the RDS certificate authorities,
# so Hive (MariaDB Connector/J, serverSslCert) and Hue (mysqlclient,
# read_default_file) verify the metastore's certificate and its name.
# $1 the bundle's URL, $2 where it goes, $3 Hue's MySQL client options.
set -euo pipefail
url="$1" dest="$2" cnf="$3"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsS --retry 5 --retry-connrefused -o "$tmp" "$url"
certs=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$tmp" || true)
if [ "$certs" -lt 1 ]; then
  echo "rds-ca-bundle: $url holds no certificate" >&2
  exit 1
fi
sudo install -D -m 0644 "$tmp" "$dest"
printf '{cnf}' "$dest" > "$tmp"
sudo install -D -m 0644 "$tmp" "$cnf"
echo "rds-ca-bundle: $certs certificates in $dest; Hue's client options in $cnf"
"#,
        cnf = hue_client_cnf("%s").replace('\n', "\\n")
    )
}

/// The script's key in the artifacts bucket: by content, so a changed
/// script is a new object and a new bootstrap action.
pub fn rds_ca_script_key() -> String {
    let digest = hex::encode(Sha256::digest(rds_ca_script().as_bytes()));
    format!("emr/bootstrap/{}/rds-ca.sh", &digest[..16])
}

/// Hue's `[desktop] [[database]] options`: Django's MySQL OPTIONS, JSON,
/// passed to `MySQLdb.connect`: the option file the bootstrap action writes
/// (`hue_client_cnf`). No `,` or `#` (ConfigObj would read a list or a
/// comment).
pub fn hue_db_options() -> String {
    format!(r#"{{"read_default_file": "{HUE_MYSQL_CNF_PATH}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_script_and_hue_options_are_configobj_safe() {
        assert!(rds_ca_script_key().starts_with("emr/bootstrap/"));
        assert!(rds_ca_script_key().ends_with("/rds-ca.sh"));
        let options = hue_db_options();
        assert!(
            !options.contains(',') && !options.contains('#'),
            "{options}"
        );
        let v: serde_json::Value = serde_json::from_str(&options).unwrap();
        assert_eq!(v["read_default_file"], HUE_MYSQL_CNF_PATH);
        assert!(hue_client_cnf(RDS_CA_PATH).contains("ssl-verify-server-cert=1\n"));
    }
}
