//! Wire types of the HSS API: the only place that derives `Deserialize` from Huawei's format.
//!
//! Every field of Huawei's models is an optional pointer in their SDKs, so every field here
//! is optional too; registry items stay raw JSON objects so that unknown keys survive.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::registry::{RawItem, RawRegistry};

/// The body of a `ListRegistry` answer: `{"total_num": .., "data_list": [..]}`.
#[derive(Debug)]
pub struct ListRegistryResponse {
    /// How many registries match the query in all, when the API says so.
    pub total_num: Option<i64>,
    /// The items of this page, each a registry or why it is not one.
    pub data_list: Option<Vec<Result<RawRegistry, String>>>,
    /// An error code in a body that should have been a page (some gateways answer 200 so).
    pub error_code: Option<Value>,
    /// The message that goes with `error_code`.
    pub error_msg: Option<Value>,
}

/// [`ListRegistryResponse`] as read, its items borrowed from the body.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    total_num: Option<i64>,
    #[serde(default, borrow)]
    data_list: Option<Vec<RawItem<'a>>>,
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    error_msg: Option<Value>,
}

impl ListRegistryResponse {
    /// Reads a body in one pass: each item's members are found as the page is read, and
    /// the items keep the body, shared, rather than a copy each.
    ///
    /// # Errors
    ///
    /// Returns a message when the body is not UTF-8 JSON of this shape.
    pub fn parse(body: &[u8]) -> Result<ListRegistryResponse, String> {
        let text: Arc<str> = Arc::from(
            std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?,
        );
        let envelope: Envelope<'_> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok(ListRegistryResponse {
            total_num: envelope.total_num,
            data_list: envelope.data_list.map(|items| {
                items
                    .into_iter()
                    .map(|item| RawRegistry::from_item(&text, item))
                    .collect()
            }),
            error_code: envelope.error_code,
            error_msg: envelope.error_msg,
        })
    }

    /// The page, when the body is a whole page: `data_list` an array of objects that each
    /// carry a string `id`, and `total_num` a number. Anything less is not a page: a walk
    /// built on it could not tell what is missing from what was never sent.
    ///
    /// # Errors
    ///
    /// What is missing or wrong, in words for the scope's error.
    pub fn into_page(self, request_id: Option<String>) -> Result<RegistryPage, String> {
        let carried_error = match (&self.error_code, &self.error_msg) {
            (Some(code), msg) => format!(
                " (it carries error_code {}{})",
                text_of(code),
                msg.as_ref()
                    .map(|m| format!(": {}", text_of(m)))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        let items = self
            .data_list
            .ok_or_else(|| format!("the page has no data_list{carried_error}"))?;
        let total_num = self
            .total_num
            .ok_or_else(|| format!("the page has no total_num{carried_error}"))?;
        let items = items
            .into_iter()
            .enumerate()
            .map(|(position, item)| {
                let item = item.map_err(|e| format!("item {position} of data_list: {e}"))?;
                match item.id_value() {
                    Some(Value::String(id)) if !id.is_empty() => Ok(item),
                    _ => Err(format!("item {position} of data_list has no string id")),
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RegistryPage {
            total_num,
            items,
            request_id,
        })
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// One page of `ListRegistry`, as the client hands it to the sync engine.
#[derive(Debug, Clone)]
pub struct RegistryPage {
    /// `total_num` of the answer.
    pub total_num: i64,
    /// The items of `data_list`, each an object with a string `id`.
    pub items: Vec<RawRegistry>,
    /// Huawei's request id (`X-Request-Id`), for support tickets.
    pub request_id: Option<String>,
}

/// The body of an IAM token answer (`POST /v3/auth/tokens`); the token itself is the
/// `X-Subject-Token` header.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    /// The token's description.
    pub token: TokenBody,
}

/// The part of a token description we use.
#[derive(Debug, Deserialize)]
pub struct TokenBody {
    /// When the token stops working, RFC 3339 (`2020-01-04T09:05:22.701000Z`).
    pub expires_at: String,
    /// When it was issued.
    #[serde(default)]
    pub issued_at: Option<String>,
}

/// The body of IAM `KeystoneListProjects` (`GET /v3/projects`).
#[derive(Debug, Deserialize)]
pub struct ListProjectsResponse {
    /// The projects of this page.
    #[serde(default)]
    pub projects: Vec<ProjectInfo>,
    /// Paging links; `next` is null on the last page.
    #[serde(default)]
    pub links: Option<Links>,
}

/// Paging links of an IAM list.
#[derive(Debug, Deserialize)]
pub struct Links {
    /// The next page, when there is one.
    #[serde(default)]
    pub next: Option<String>,
}

/// One IAM project.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ProjectInfo {
    /// The project id.
    pub id: String,
    /// The name: a region id for a region's main project, `{region}_{suffix}` for a sub-project.
    pub name: String,
    /// The parent: the account for main projects, the region's main project for sub-projects.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Whether it is enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// The body of IAM `KeystoneListAuthDomains` (`GET /v3/auth/domains`).
#[derive(Debug, Deserialize)]
pub struct ListAuthDomainsResponse {
    /// The caller's account(s); the first is used.
    #[serde(default)]
    pub domains: Vec<DomainInfo>,
}

/// One account (domain).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DomainInfo {
    /// The account id.
    pub id: String,
    /// The account name.
    #[serde(default)]
    pub name: Option<String>,
}

/// The body of EPS `ListEnterpriseProject` (`GET /v1.0/enterprise-projects`).
#[derive(Debug, Deserialize)]
pub struct ListEnterpriseProjectsResponse {
    /// The enterprise projects of this page.
    #[serde(default)]
    pub enterprise_projects: Vec<EnterpriseProjectInfo>,
    /// How many match in all.
    #[serde(default)]
    pub total_count: Option<i64>,
}

/// One enterprise project.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct EnterpriseProjectInfo {
    /// Its id; `0` is the default enterprise project.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// 1 enabled, 2 disabled.
    #[serde(default)]
    pub status: Option<i64>,
}

/// A Huawei error body. Huawei's services use several spellings; the SDKs look for each
/// in turn, and so do we: `error_code`/`error_msg`, `errorCode`/`errorMsg`, `code`/`message`,
/// then the same one level down (`{"error": {"code": .., "message": ..}}`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ErrorBody {
    /// Huawei's code, for example `APIG.0301` or `HSS.0001`.
    pub error_code: Option<String>,
    /// Huawei's message.
    pub error_msg: Option<String>,
    /// The request id given in the body.
    pub request_id: Option<String>,
}

impl ErrorBody {
    /// Reads an error body; `None` when the bytes are not a JSON object with a known shape.
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let object = value.as_object()?;
        let found = Self::from_object(object).or_else(|| {
            object
                .values()
                .filter_map(Value::as_object)
                .find_map(Self::from_object)
        })?;
        Some(ErrorBody {
            request_id: found.request_id.or_else(|| text(object, "request_id")),
            ..found
        })
    }

    fn from_object(object: &Map<String, Value>) -> Option<ErrorBody> {
        let pairs = [
            ("error_code", "error_msg"),
            ("errorCode", "errorMsg"),
            ("code", "message"),
        ];
        pairs.iter().find_map(|(code_key, msg_key)| {
            let error_code = text(object, code_key);
            let error_msg = text(object, msg_key);
            (error_code.is_some() || error_msg.is_some()).then(|| ErrorBody {
                error_code,
                error_msg,
                request_id: text(object, "request_id"),
            })
        })
    }
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(body: &str, code: Option<&str>, msg: Option<&str>, request_id: Option<&str>) {
        let parsed = ErrorBody::parse(body.as_bytes()).expect("parsed");
        assert_eq!(parsed.error_code.as_deref(), code);
        assert_eq!(parsed.error_msg.as_deref(), msg);
        assert_eq!(parsed.request_id.as_deref(), request_id);
    }

    #[test]
    fn error_bodies_are_read_in_every_huawei_spelling() {
        check(
            r#"{"error_msg":"Incorrect IAM authentication information: x","error_code":"APIG.0301","request_id":"abc"}"#,
            Some("APIG.0301"),
            Some("Incorrect IAM authentication information: x"),
            Some("abc"),
        );
        check(
            r#"{"errorCode":"E1","errorMsg":"m"}"#,
            Some("E1"),
            Some("m"),
            None,
        );
        check(
            r#"{"code":"C","message":"m2"}"#,
            Some("C"),
            Some("m2"),
            None,
        );
        check(
            r#"{"error":{"code":"IAM.0001","message":"nested"},"request_id":"r9"}"#,
            Some("IAM.0001"),
            Some("nested"),
            Some("r9"),
        );
    }

    #[test]
    fn non_error_bodies_are_not_error_bodies() {
        assert_eq!(ErrorBody::parse(b"<html>bad gateway</html>"), None);
        assert_eq!(ErrorBody::parse(b"{\"total_num\":1}"), None);
    }

    #[track_caller]
    fn check_not_a_page(body: &str, expected: &str) {
        let error = ListRegistryResponse::parse(body.as_bytes())
            .and_then(|response| response.into_page(None))
            .unwrap_err();
        assert!(error.contains(expected), "{body}: {error}");
    }

    #[test]
    fn bodies_that_are_not_whole_pages_are_refused_naming_what_is_missing() {
        check_not_a_page("{}", "no data_list");
        check_not_a_page(r#"{"data_list":null,"total_num":3}"#, "no data_list");
        check_not_a_page(
            r#"{"error_code":"HSS.1001","error_msg":"internal"}"#,
            "no data_list (it carries error_code HSS.1001: internal)",
        );
        check_not_a_page(r#"{"data_list":[]}"#, "no total_num");
        check_not_a_page(r#"{"data_list":{},"total_num":1}"#, "invalid type");
        check_not_a_page(
            r#"{"data_list":[{"id":"a"},{"registry_name":"b"}],"total_num":2}"#,
            "item 1 of data_list has no string id",
        );
        check_not_a_page(r#"{"data_list":[{"id":7}],"total_num":1}"#, "item 0");
    }

    #[test]
    fn a_whole_page_reads() {
        let page = ListRegistryResponse::parse(
            br#"{"data_list":[{"id":"a","x":1}],"total_num":1,"extra":true}"#,
        )
        .unwrap()
        .into_page(Some("r".to_owned()))
        .unwrap();
        assert_eq!(page.total_num, 1);
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.request_id.as_deref(), Some("r"));
    }
}
