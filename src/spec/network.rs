//! Address planning for a new VPC: the subnet CIDRs derived from the VPC CIDR.
//!
//! Owns: deriving one public and one private subnet per AZ, and how many AZs
//! MSK uses. Must not: report diagnostics (callers do) or know about templates.

use ipnet::Ipv4Net;

use super::model::Network;

impl Network {
    /// Number of availability zones the platform spans.
    pub fn az_count(&self) -> usize {
        match self {
            Network::New(n) => n.availability_zones as usize,
            Network::Existing(e) => e.private_subnet_ids.len(),
        }
    }
}

/// MSK spreads brokers over two or three AZs: the first (up to) three of ours.
pub fn msk_az_count(az_count: usize) -> usize {
    az_count.clamp(2, 3)
}

/// Why subnets cannot be carved from the VPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("`{0}` is not an IPv4 CIDR")]
    NotCidr(String),
    #[error("subnet_prefix /{prefix} must be longer than the VPC's /{vpc_prefix} and at most /28")]
    Prefix { prefix: u8, vpc_prefix: u8 },
    #[error(
        "the VPC {vpc} holds only {fits} subnets of /{prefix}; {needed} are needed (one public \
         and one private per AZ): use a shorter subnet_prefix"
    )]
    TooFew {
        vpc: String,
        prefix: u8,
        fits: usize,
        needed: usize,
    },
}

/// `2 * azs` subnets of `/prefix` carved in order from `vpc_cidr`:
/// the first `azs` are public, the next `azs` private.
pub fn derive_subnets(vpc_cidr: &str, prefix: u8, azs: usize) -> Result<Vec<String>, SubnetError> {
    let vpc: Ipv4Net = vpc_cidr
        .parse()
        .map_err(|_| SubnetError::NotCidr(vpc_cidr.to_string()))?;
    if prefix <= vpc.prefix_len() || prefix > 28 {
        return Err(SubnetError::Prefix {
            prefix,
            vpc_prefix: vpc.prefix_len(),
        });
    }
    let subnets: Vec<String> = vpc
        .trunc()
        .subnets(prefix)
        .map_err(|_| SubnetError::Prefix {
            prefix,
            vpc_prefix: vpc.prefix_len(),
        })?
        .take(2 * azs)
        .map(|n| n.to_string())
        .collect();
    if subnets.len() < 2 * azs {
        return Err(SubnetError::TooFew {
            vpc: vpc.to_string(),
            prefix,
            fits: subnets.len(),
            needed: 2 * azs,
        });
    }
    Ok(subnets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_public_then_private() {
        let s = derive_subnets("10.20.0.0/16", 20, 2).unwrap();
        assert_eq!(
            s,
            [
                "10.20.0.0/20",
                "10.20.16.0/20",
                "10.20.32.0/20",
                "10.20.48.0/20"
            ]
        );
    }

    #[test]
    fn too_small_vpc_is_explained() {
        let e = derive_subnets("10.20.0.0/24", 26, 3).unwrap_err();
        assert!(e.to_string().contains("only 4 subnets"), "{e}");
    }

    #[test]
    fn msk_uses_two_or_three_azs() {
        assert_eq!(msk_az_count(2), 2);
        assert_eq!(msk_az_count(6), 3);
    }
}
