//! Genesys Cloud regions: the official genesyscloud provider's `aws_region` names and the
//! domain each one serves (`login.<domain>` for tokens, `api.<domain>` for the API).

/// `(aws_region, domain, display name)`.
pub const GENESYS_REGIONS: &[(&str, &str, &str)] = &[
    ("us-east-1", "mypurecloud.com", "Americas (US East)"),
    ("us-east-2", "use2.us-gov-pure.cloud", "FedRAMP"),
    ("us-west-2", "usw2.pure.cloud", "Americas (US West)"),
    ("ca-central-1", "cac1.pure.cloud", "Americas (Canada)"),
    ("sa-east-1", "sae1.pure.cloud", "Americas (São Paulo)"),
    ("mx-central-1", "mxc1.pure.cloud", "Americas (Mexico)"),
    ("eu-west-1", "mypurecloud.ie", "EMEA (Dublin)"),
    ("eu-west-2", "euw2.pure.cloud", "EMEA (London)"),
    ("eu-central-1", "mypurecloud.de", "EMEA (Frankfurt)"),
    ("eu-central-2", "euc2.pure.cloud", "EMEA (Zurich)"),
    ("me-central-1", "mec1.pure.cloud", "EMEA (UAE)"),
    (
        "eusc-de-east-1",
        "edee1.eusc-pure.cloud",
        "EU Sovereign Cloud",
    ),
    ("ap-south-1", "aps1.pure.cloud", "Asia Pacific (Mumbai)"),
    (
        "ap-southeast-1",
        "apse1.pure.cloud",
        "Asia Pacific (Singapore)",
    ),
    (
        "ap-southeast-2",
        "mypurecloud.com.au",
        "Asia Pacific (Sydney)",
    ),
    ("ap-northeast-1", "mypurecloud.jp", "Asia Pacific (Tokyo)"),
    ("ap-northeast-2", "apne2.pure.cloud", "Asia Pacific (Seoul)"),
    ("ap-northeast-3", "apne3.pure.cloud", "Asia Pacific (Osaka)"),
    ("dca", "inindca.com", "Genesys-internal development"),
    ("tca", "inintca.com", "Genesys-internal test"),
];

/// The domain of a region name, matched case-insensitively as the official provider does.
pub fn domain_of(region: &str) -> Option<(&'static str, &'static str)> {
    let region = region.trim();
    GENESYS_REGIONS
        .iter()
        .find(|(r, _, _)| r.eq_ignore_ascii_case(region))
        .map(|(r, d, _)| (*r, *d))
}

/// The region name of a domain, if it is one of the known ones.
pub fn region_of(domain: &str) -> Option<&'static str> {
    let domain = domain.trim().trim_end_matches('.');
    GENESYS_REGIONS
        .iter()
        .find(|(_, d, _)| d.eq_ignore_ascii_case(domain))
        .map(|(r, _, _)| *r)
}

/// The public NICE CXone issuers: global, FedRAMP, and the AU, EU and UK sovereign clouds.
pub const CXONE_ISSUERS: [&str; 5] = [
    "https://cxone.niceincontact.com",
    "https://cxone-gov.niceincontact.com",
    "https://nicecxone-sov1.au",
    "https://nicecxone-sov1.eu",
    "https://nicecxone-sov1.uk",
];

/// The known issuer `url` is (scheme and host compared, no path), if it is one.
pub fn known_cxone_issuer(url: &url::Url) -> Option<&'static str> {
    CXONE_ISSUERS.iter().copied().find(|known| {
        url::Url::parse(known).is_ok_and(|k| {
            k.scheme() == url.scheme()
                && k.host_str() == url.host_str()
                && url.port_or_known_default() == Some(443)
                && url.path().trim_end_matches('/').is_empty()
        })
    })
}

/// The region names, for a diagnostic that lists them.
pub fn region_names() -> String {
    GENESYS_REGIONS
        .iter()
        .map(|(r, _, _)| *r)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a bare domain such as `mypurecloud.com` (no scheme, path or `login.`/`api.` prefix).
pub fn check_domain(domain: &str) -> Result<String, String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !d.is_empty()
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        return Err(format!(
            "{domain:?} is not a domain name; give the bare domain, e.g. \"mypurecloud.com\""
        ));
    }
    if d.starts_with("login.") || d.starts_with("api.") {
        return Err(format!(
            "{domain:?} includes the host prefix; give the bare domain without \"login.\" or \"api.\", e.g. \"mypurecloud.com\""
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_round_trips_and_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (region, domain, _) in GENESYS_REGIONS {
            assert!(seen.insert(*region), "duplicate {region}");
            assert_eq!(domain_of(region), Some((*region, *domain)));
            assert_eq!(region_of(domain), Some(*region));
            assert_eq!(check_domain(domain).as_deref(), Ok(*domain));
        }
        assert_eq!(GENESYS_REGIONS.len(), 20);
    }

    #[test]
    fn lookups_are_case_insensitive() {
        assert_eq!(
            domain_of(" US-East-1 "),
            Some(("us-east-1", "mypurecloud.com"))
        );
        assert_eq!(region_of("MyPureCloud.ie."), Some("eu-west-1"));
        assert_eq!(domain_of("us-east-9"), None);
    }

    #[test]
    fn domains_are_checked() {
        assert!(check_domain("https://mypurecloud.com").is_err());
        assert!(
            check_domain("login.mypurecloud.com")
                .unwrap_err()
                .contains("host prefix")
        );
        assert!(check_domain("localhost").is_err());
        assert!(check_domain("").is_err());
        assert_eq!(check_domain("Example.COM").as_deref(), Ok("example.com"));
    }
}
