//! EMR in-transit encryption material: a self-signed certificate for the
//! cluster's nodes, as the PEM zip EMR's security configuration reads
//! (`privateKey.pem`, `certificateChain.pem`, `trustedCertificates.pem`).
//!
//! Owns: generating the material and the zip. Must not: decide where it
//! goes or when (the deployer publishes it once per environment; an
//! existing object is never replaced, so running clusters keep working).

use std::io::Write;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, RsaKeySize, PKCS_RSA_SHA256};

use super::PublishError;

/// Key of the zip in the artifacts bucket (the EMR template names it).
pub const EMR_TLS_KEY: &str = "emr/tls-certificates.zip";

/// The node names the certificate covers: EC2's private DNS in `region`.
pub fn node_names(region: &str) -> Vec<String> {
    if region == "us-east-1" {
        vec!["*.ec2.internal".into()]
    } else {
        vec![format!("*.{region}.compute.internal")]
    }
}

/// The zip for `region`: an RSA-2048 key and a certificate valid ten years.
pub fn emr_certificates_zip(region: &str) -> Result<Vec<u8>, PublishError> {
    let fail = |e: String| PublishError::File {
        path: EMR_TLS_KEY.into(),
        message: e,
    };
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(|e| fail(e.to_string()))?;
    let mut params = CertificateParams::new(node_names(region)).map_err(|e| fail(e.to_string()))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, node_names(region)[0].clone());
    name.push(DnType::OrganizationName, "lakectl");
    params.distinguished_name = name;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o600);
        for (file, text) in [
            ("privateKey.pem", &key_pem),
            ("certificateChain.pem", &cert_pem),
            ("trustedCertificates.pem", &cert_pem),
        ] {
            zip.start_file(file, options)
                .map_err(|e| fail(e.to_string()))?;
            zip.write_all(text.as_bytes())
                .map_err(|e| fail(e.to_string()))?;
        }
        zip.finish().map_err(|e| fail(e.to_string()))?;
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_zip_holds_the_three_pem_files_emr_reads() {
        let bytes = emr_certificates_zip("eu-west-1").unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(String::from).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "certificateChain.pem",
                "privateKey.pem",
                "trustedCertificates.pem"
            ]
        );
        let mut read = |name: &str| {
            let mut text = String::new();
            zip.by_name(name)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        assert!(read("privateKey.pem").starts_with("-----BEGIN PRIVATE KEY-----"));
        let chain = read("certificateChain.pem");
        assert!(chain.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(chain, read("trustedCertificates.pem"));
        assert_eq!(node_names("eu-west-1"), ["*.eu-west-1.compute.internal"]);
        assert_eq!(node_names("us-east-1"), ["*.ec2.internal"]);
    }
}
