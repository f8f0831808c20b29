//! Which HSS endpoint serves a region, and how an endpoint is chosen.
//!
//! The region table and the override variable copy Huawei's SDKs (Go `services/hss/v5/region/region.go`,
//! Py `huaweicloudsdkhss/v5/region/hss_region.py`, Go `core/region/env_region.go`).
//! Everything here is pure; [`resolve_hss_endpoint`] takes the environment lookup as a closure.

use url::Url;

/// Region ids HSS serves, from Huawei's SDKs: the Go SDK's 30, plus `af-north-1` and `ap-southeast-5`
/// from the newer Python SDK.
///
/// Informative only: [`default_hss_endpoint`] also serves well-formed ids missing from this list,
/// because new regions open before the SDK tables list them.
pub const HSS_REGIONS: &[&str] = &[
    "cn-north-9",
    "cn-north-1",
    "cn-north-4",
    "cn-southwest-2",
    "cn-east-2",
    "cn-east-3",
    "cn-east-4",
    "cn-south-1",
    "cn-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "na-mexico-1",
    "af-south-1",
    "sa-brazil-1",
    "la-south-2",
    "cn-south-4",
    "la-north-2",
    "tr-west-1",
    "cn-north-2",
    "ap-southeast-4",
    "ae-ad-1",
    "me-east-1",
    "cn-east-5",
    "my-kualalumpur-1",
    "eu-west-101",
    "ru-moscow-1",
    "cn-north-12",
    "cn-southwest-3",
    "cn-north-11",
    "af-north-1",
    "ap-southeast-5",
];

/// Prefix of the SDKs' per-region endpoint override variable for HSS; the region id follows,
/// upper-cased with `-` replaced by `_`.
pub const SDK_REGION_OVERRIDE_PREFIX: &str = "HUAWEICLOUD_SDK_REGION_HSS_";

/// The one region whose HSS endpoint is not on `myhuaweicloud.com` (the EU sovereign region).
const EU_WEST_101: &str = "eu-west-101";

/// HSS endpoint of [`EU_WEST_101`], from the Go SDK's region table.
const EU_WEST_101_ENDPOINT: &str = "https://hss.eu-west-101.myhuaweicloud.eu";

/// IAM's global endpoint; it issues tokens and lists projects for every region but `eu-west-101`.
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";

/// EPS's global endpoint; EPS is a global service, except in `eu-west-101`.
pub const DEFAULT_EPS_ENDPOINT: &str = "https://eps.myhuaweicloud.com";

/// IAM of [`EU_WEST_101`], which the global endpoint does not serve.
const EU_WEST_101_IAM_ENDPOINT: &str = "https://iam.eu-west-101.myhuaweicloud.eu";

/// EPS of [`EU_WEST_101`], which the global endpoint does not serve.
const EU_WEST_101_EPS_ENDPOINT: &str = "https://eps.eu-west-101.myhuaweicloud.eu";

/// Longest accepted region id: the id is one DNS label of the endpoint's host name, and a DNS label
/// holds at most 63 bytes.
const MAX_REGION_ID_LEN: usize = 63;

/// Whether `region` is in [`HSS_REGIONS`].
pub fn is_hss_region(region: &str) -> bool {
    HSS_REGIONS.contains(&region)
}

/// Default HSS endpoint for a region: `https://hss.{region}.myhuaweicloud.com`, except `eu-west-101`,
/// which is `https://hss.eu-west-101.myhuaweicloud.eu`.
///
/// Region ids missing from [`HSS_REGIONS`] still get the standard pattern when they look like region ids,
/// because new regions appear before the SDK tables know them.
///
/// # Errors
///
/// Returns [`EndpointError::InvalidRegion`] when `region` is empty, longer than 63 bytes, holds anything
/// but lower-case ASCII letters, digits and `-`, does not start with a letter or ends with `-`.
pub fn default_hss_endpoint(region: &str) -> Result<Url, EndpointError> {
    validate_region_id(region)?;
    let endpoint = if region == EU_WEST_101 {
        EU_WEST_101_ENDPOINT.to_owned()
    } else {
        format!("https://hss.{region}.myhuaweicloud.com")
    };
    // A validated region id is a valid DNS label, so this parse cannot fail; map it anyway rather than
    // panic.
    Url::parse(&endpoint).map_err(|_| EndpointError::InvalidRegion {
        region: region.to_owned(),
    })
}

/// A global service that hss-sync calls besides HSS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalService {
    /// IAM: tokens and project listing.
    Iam,
    /// EPS: enterprise project listing.
    Eps,
}

/// The endpoint of a global service for `region`: the global one ([`DEFAULT_IAM_ENDPOINT`],
/// [`DEFAULT_EPS_ENDPOINT`]), or the EU sovereign region's own. `None` (discovery over every
/// region) takes the global one.
pub fn default_global_endpoint(service: GlobalService, region: Option<&str>) -> Url {
    let text = match (service, region == Some(EU_WEST_101)) {
        (GlobalService::Iam, false) => DEFAULT_IAM_ENDPOINT,
        (GlobalService::Iam, true) => EU_WEST_101_IAM_ENDPOINT,
        (GlobalService::Eps, false) => DEFAULT_EPS_ENDPOINT,
        (GlobalService::Eps, true) => EU_WEST_101_EPS_ENDPOINT,
    };
    Url::parse(text).expect("a constant URL")
}

/// Name of the SDKs' endpoint override variable for HSS in `region`:
/// `HUAWEICLOUD_SDK_REGION_HSS_` followed by the region id upper-cased, `-` replaced by `_`
/// (`cn-north-4` gives `HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4`).
pub fn sdk_region_override_variable(region: &str) -> String {
    format!(
        "{SDK_REGION_OVERRIDE_PREFIX}{}",
        region.to_ascii_uppercase().replace('-', "_")
    )
}

/// Chooses the HSS endpoint for `region`, in this order:
///
/// 1. `explicit`, when given (the endpoint from hss-sync's own configuration);
/// 2. the SDK override variable ([`sdk_region_override_variable`]) read through `lookup_env`: the first
///    entry of its comma-separated list, trimmed (an unset or blank variable is skipped, as in the Go SDK);
/// 3. [`default_hss_endpoint`].
///
/// The SDKs' `~/.huaweicloud/regions.yaml` file is not read.
/// The region id is validated in every case, since it is also used to find the project.
///
/// # Errors
///
/// Returns [`EndpointError::InvalidRegion`] for a malformed region id, and
/// [`EndpointError::EmptyOverride`], [`EndpointError::OverrideNotAUrl`] or
/// [`EndpointError::OverrideNotHttp`] when the override variable is set to something unusable: a typo
/// there must stop the sync rather than silently fall back to the public endpoint.
pub fn resolve_hss_endpoint(
    region: &str,
    explicit: Option<&Url>,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> Result<Url, EndpointError> {
    validate_region_id(region)?;
    if let Some(explicit) = explicit {
        return Ok(explicit.clone());
    }
    let variable = sdk_region_override_variable(region);
    match lookup_env(&variable) {
        Some(value) if !value.trim().is_empty() => parse_override(variable, &value),
        // As Huawei's SDKs refuse a region id their table lacks, so do we: a guessed host
        // name that does not resolve would only be found out after a run of retries.
        _ if !is_hss_region(region) => Err(EndpointError::UnknownRegion {
            region: region.to_owned(),
            variable,
        }),
        _ => default_hss_endpoint(region),
    }
}

/// Why no HSS endpoint could be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The region id is well formed but not one HSS is known to serve, and no endpoint was given.
    #[error(
        "unknown region {region:?}: HSS serves {}; for another region give its endpoint with --endpoint or {variable}",
        HSS_REGIONS.join(", ")
    )]
    UnknownRegion {
        /// The region id as given.
        region: String,
        /// The SDK override variable that would give its endpoint.
        variable: String,
    },
    /// The region id is empty or not shaped like a region id.
    #[error("invalid region id {region:?}: expected lower-case letters, digits and '-', like \"cn-north-4\"")]
    InvalidRegion {
        /// The region id as given.
        region: String,
    },
    /// The override variable is set, but its first comma-separated entry is empty.
    #[error("{variable} is set to {value:?}, whose first endpoint is empty")]
    EmptyOverride {
        /// Name of the override variable.
        variable: String,
        /// Its whole value.
        value: String,
    },
    /// The override variable's first entry does not parse as an absolute URL.
    #[error("{variable} holds {value:?}, which is not an absolute url")]
    OverrideNotAUrl {
        /// Name of the override variable.
        variable: String,
        /// The first entry, trimmed.
        value: String,
        /// Why the URL parser refused it.
        #[source]
        source: url::ParseError,
    },
    /// The override variable's first entry is a URL, but not an `http` or `https` one with a host.
    #[error("{variable} holds {value:?}, which is not an http or https url with a host")]
    OverrideNotHttp {
        /// Name of the override variable.
        variable: String,
        /// The first entry, trimmed.
        value: String,
    },
}

/// Checks that `region` looks like a region id (see [`default_hss_endpoint`]).
fn validate_region_id(region: &str) -> Result<(), EndpointError> {
    let well_formed = !region.is_empty()
        && region.len() <= MAX_REGION_ID_LEN
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && !region.ends_with('-')
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if well_formed {
        Ok(())
    } else {
        Err(EndpointError::InvalidRegion {
            region: region.to_owned(),
        })
    }
}

/// Parses the first entry of the override variable's comma-separated value.
fn parse_override(variable: String, value: &str) -> Result<Url, EndpointError> {
    let first = value.split(',').next().unwrap_or_default().trim();
    if first.is_empty() {
        return Err(EndpointError::EmptyOverride {
            variable,
            value: value.to_owned(),
        });
    }
    let url = Url::parse(first).map_err(|source| EndpointError::OverrideNotAUrl {
        variable: variable.clone(),
        value: first.to_owned(),
        source,
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().unwrap_or_default().is_empty() {
        return Err(EndpointError::OverrideNotHttp {
            variable,
            value: first.to_owned(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashSet;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// An environment holding exactly one variable.
    fn env_with(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |asked: &str| (asked == name).then(|| value.to_owned())
    }

    #[test]
    fn the_eu_sovereign_region_has_its_own_iam_and_eps_and_every_other_the_global_ones() {
        let endpoint = |service, region| default_global_endpoint(service, region).to_string();
        use GlobalService::{Eps, Iam};
        let eu = Some("eu-west-101");
        assert_eq!(
            endpoint(Iam, eu),
            "https://iam.eu-west-101.myhuaweicloud.eu/"
        );
        assert_eq!(
            endpoint(Eps, eu),
            "https://eps.eu-west-101.myhuaweicloud.eu/"
        );
        for region in [Some("cn-north-4"), None] {
            assert_eq!(endpoint(Iam, region), "https://iam.myhuaweicloud.com/");
            assert_eq!(endpoint(Eps, region), "https://eps.myhuaweicloud.com/");
        }
    }

    #[test]
    fn standard_region_gets_the_myhuaweicloud_com_endpoint() {
        assert_eq!(
            default_hss_endpoint("cn-north-4").unwrap().as_str(),
            "https://hss.cn-north-4.myhuaweicloud.com/"
        );
    }

    #[test]
    fn eu_west_101_gets_the_myhuaweicloud_eu_endpoint() {
        assert_eq!(
            default_hss_endpoint("eu-west-101").unwrap().as_str(),
            "https://hss.eu-west-101.myhuaweicloud.eu/"
        );
    }

    #[test]
    fn unknown_but_well_formed_region_gets_the_standard_pattern_but_is_not_an_hss_region() {
        assert_eq!(
            default_hss_endpoint("xx-newland-9").unwrap().as_str(),
            "https://hss.xx-newland-9.myhuaweicloud.com/"
        );
        assert!(!is_hss_region("xx-newland-9"));
    }

    #[test]
    fn unknown_region_without_an_endpoint_is_refused_naming_it_and_the_way_out() {
        let error = resolve_hss_endpoint("mars-1", None, |_| None).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, EndpointError::UnknownRegion { .. }),
            "{error:?}"
        );
        for needle in [
            "\"mars-1\"",
            "cn-north-4",
            "--endpoint",
            "HUAWEICLOUD_SDK_REGION_HSS_MARS_1",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        let explicit = Url::parse("http://127.0.0.1:1").unwrap();
        assert!(resolve_hss_endpoint("mars-1", Some(&explicit), |_| None).is_ok());
        let env = |name: &str| {
            (name == "HUAWEICLOUD_SDK_REGION_HSS_MARS_1")
                .then(|| "https://hss.mars.example".to_owned())
        };
        assert!(resolve_hss_endpoint("mars-1", None, env).is_ok());
    }

    #[test]
    fn region_table_holds_the_sdk_regions_once_each() {
        assert_eq!(HSS_REGIONS.len(), 32);
        let unique: HashSet<&str> = HSS_REGIONS.iter().copied().collect();
        assert_eq!(unique.len(), 32);
        for region in [
            "cn-north-4",
            "eu-west-101",
            "af-north-1",
            "ap-southeast-5",
            "cn-north-11",
        ] {
            assert!(is_hss_region(region), "{region}");
        }
        for region in HSS_REGIONS {
            assert!(default_hss_endpoint(region).is_ok(), "{region}");
        }
    }

    #[test]
    fn malformed_region_ids_are_rejected_with_the_id_in_the_message() {
        for region in [
            "",
            "CN-NORTH-4",
            "cn_north_4",
            "cn-north-4.evil.example",
            "-cn-north-4",
            "4cn",
            "cn-north-4-",
            "cn north 4",
        ] {
            let error = default_hss_endpoint(region).unwrap_err();
            assert!(
                matches!(&error, EndpointError::InvalidRegion { region: r } if r == region),
                "{region:?}: {error:?}"
            );
            assert!(
                error.to_string().contains(&format!("{region:?}")),
                "{error}"
            );
        }
        assert!(default_hss_endpoint(&"a".repeat(64)).is_err());
    }

    #[test]
    fn override_variable_name_follows_the_sdk_convention() {
        assert_eq!(
            sdk_region_override_variable("cn-north-4"),
            "HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4"
        );
        assert_eq!(
            sdk_region_override_variable("eu-west-101"),
            "HUAWEICLOUD_SDK_REGION_HSS_EU_WEST_101"
        );
    }

    #[test]
    fn explicit_endpoint_wins_over_the_override_variable() {
        // Arrange
        let explicit = Url::parse("http://127.0.0.1:8443").unwrap();
        let env = env_with(
            "HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4",
            "https://from-env.example.com",
        );

        // Act
        let endpoint = resolve_hss_endpoint("cn-north-4", Some(&explicit), env).unwrap();

        // Assert
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:8443/");
    }

    #[test]
    fn override_variable_wins_over_the_default_and_only_its_first_entry_counts() {
        // Arrange
        let asked = RefCell::new(Vec::new());
        let env = |name: &str| {
            asked.borrow_mut().push(name.to_owned());
            (name == "HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4").then(|| {
                " https://hss-proxy.example.com:9443/hss , https://second.example.com".to_owned()
            })
        };

        // Act
        let endpoint = resolve_hss_endpoint("cn-north-4", None, env).unwrap();

        // Assert
        assert_eq!(endpoint.as_str(), "https://hss-proxy.example.com:9443/hss");
        assert_eq!(
            asked.into_inner(),
            vec!["HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4".to_owned()]
        );
    }

    #[test]
    fn default_is_used_when_the_override_variable_is_unset_or_blank() {
        assert_eq!(
            resolve_hss_endpoint("eu-west-101", None, no_env)
                .unwrap()
                .as_str(),
            "https://hss.eu-west-101.myhuaweicloud.eu/"
        );
        let blank = env_with("HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4", "  ");
        assert_eq!(
            resolve_hss_endpoint("cn-north-4", None, blank)
                .unwrap()
                .as_str(),
            "https://hss.cn-north-4.myhuaweicloud.com/"
        );
    }

    #[test]
    fn malformed_override_url_is_an_error_naming_the_variable() {
        // Arrange
        let env = env_with("HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4", "hss.example.com");

        // Act
        let error = resolve_hss_endpoint("cn-north-4", None, env).unwrap_err();

        // Assert
        assert!(
            matches!(error, EndpointError::OverrideNotAUrl { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4 holds \"hss.example.com\", which is not an absolute url"
        );
    }

    #[test]
    fn override_that_is_not_http_or_has_an_empty_first_entry_is_an_error_naming_the_variable() {
        let ftp = env_with(
            "HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4",
            "ftp://hss.example.com",
        );
        let error = resolve_hss_endpoint("cn-north-4", None, ftp).unwrap_err();
        assert!(
            matches!(error, EndpointError::OverrideNotHttp { .. }),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .starts_with("HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4 holds \"ftp://hss.example.com\""));

        let empty_first = env_with(
            "HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4",
            ",https://second.example.com",
        );
        let error = resolve_hss_endpoint("cn-north-4", None, empty_first).unwrap_err();
        assert!(
            matches!(error, EndpointError::EmptyOverride { .. }),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .starts_with("HUAWEICLOUD_SDK_REGION_HSS_CN_NORTH_4 is set"));
    }

    #[test]
    fn malformed_region_is_rejected_even_with_an_explicit_endpoint() {
        let explicit = Url::parse("https://hss.example.com").unwrap();
        assert!(matches!(
            resolve_hss_endpoint("CN-NORTH-4", Some(&explicit), no_env),
            Err(EndpointError::InvalidRegion { .. })
        ));
    }
}
