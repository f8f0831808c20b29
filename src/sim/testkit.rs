//! Test support shared by the simulator's HTTP tests: a served simulator, a client and assertions on
//! Huawei-style answers.

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::http::REQUEST_ID_HEADER;
use super::{RunningSimulator, SimConfig, SimCredentials, Simulator};

pub(crate) const ACCESS_KEY: &str = "HPUATESTACCESSKEY000";
pub(crate) const SECRET_KEY: &str = "test+secret/key=with&chars";

pub(crate) struct Harness {
    pub(crate) simulator: Simulator,
    pub(crate) running: RunningSimulator,
    pub(crate) client: reqwest::Client,
    pub(crate) project_id: String,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) request_id_header: String,
    pub(crate) text: String,
    pub(crate) headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.json()["data_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub(crate) fn assert_huawei_error(
        &self,
        status: u16,
        error_code: &str,
        error_msg_contains: &str,
    ) {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["error_code"], error_code, "{}", self.text);
        assert!(
            body["error_msg"]
                .as_str()
                .unwrap()
                .contains(error_msg_contains),
            "{}",
            self.text
        );
        let request_id = body["request_id"].as_str().unwrap();
        assert_eq!(request_id.len(), 32);
        assert!(request_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(request_id, self.request_id_header);
    }
}

pub(crate) async fn harness(config: SimConfig) -> Harness {
    let simulator = Simulator::new(config);
    let running = simulator.spawn_on_localhost().await.unwrap();
    let project_id = simulator.project_ids()[0].clone();
    Harness {
        simulator,
        running,
        client: reqwest::Client::new(),
        project_id,
    }
}

impl Harness {
    pub(crate) async fn get(&self, path_and_query: &str) -> Answer {
        self.send(
            self.client
                .get(format!("{}{path_and_query}", self.running.base_url())),
        )
        .await
    }

    pub(crate) async fn list(&self, query: &str) -> Answer {
        self.get(&format!("/v5/{}/image/registries?{query}", self.project_id))
            .await
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let request_id_header = response
            .headers()
            .get(REQUEST_ID_HEADER)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let headers = response.headers().clone();
        Answer {
            status,
            request_id_header,
            text: response.text().await.unwrap(),
            headers,
        }
    }

    /// ListRegistry for `project_id` with `X-Auth-Token: token`.
    pub(crate) async fn list_with_token(
        &self,
        project_id: &str,
        token: &str,
        query: &str,
    ) -> Answer {
        let url = format!(
            "{}/v5/{project_id}/image/registries?{query}",
            self.running.base_url()
        );
        self.send(self.client.get(url).header("X-Auth-Token", token))
            .await
    }

    /// `POST /v3/auth/tokens?nocatalog=true` for the IAM user of [`with_iam_user`] and this scope.
    pub(crate) async fn issue_token(&self, password: &str, scope: Value) -> Answer {
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "domain": {"name": IAM_DOMAIN}, "name": IAM_USER, "password": password,
            }}},
            "scope": scope,
        }});
        let url = format!("{}/v3/auth/tokens?nocatalog=true", self.running.base_url());
        self.send(
            self.client
                .post(url)
                .header("Content-Type", "application/json;charset=utf8")
                .body(body.to_string()),
        )
        .await
    }

    /// A GET to a global service (IAM, EPS) signed as the Go SDK's global credentials sign it: with
    /// `X-Domain-Id` among the signed headers. `query` must already be canonical.
    pub(crate) fn signed_global_get(&self, path: &str, query: &str) -> reqwest::RequestBuilder {
        let host = self.running.address().to_string();
        let domain_id = self.simulator.domain_id();
        let sdk_date = now_sdk_date(0);
        let canonical = format!(
            "GET\n{path}/\n{query}\nhost:{host}\nx-domain-id:{domain_id}\nx-sdk-date:{sdk_date}\n\nhost;x-domain-id;x-sdk-date\n{}",
            hex::encode(Sha256::digest(b"")),
        );
        let to_sign = format!(
            "SDK-HMAC-SHA256\n{sdk_date}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET_KEY.as_bytes()).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let url = if query.is_empty() {
            format!("{}{path}", self.running.base_url())
        } else {
            format!("{}{path}?{query}", self.running.base_url())
        };
        self.client
            .get(url)
            .header("X-Domain-Id", domain_id)
            .header("X-Sdk-Date", sdk_date)
            .header(
                "Authorization",
                format!("SDK-HMAC-SHA256 Access={ACCESS_KEY}, SignedHeaders=host;x-domain-id;x-sdk-date, Signature={signature}"),
            )
    }

    /// A ListRegistry request signed the way the Python SDK signs it (host, x-project-id, x-sdk-date),
    /// with a small signer written for this test only. `query` must already be canonical (sorted,
    /// encoded), which is also what the Python SDK sends.
    pub(crate) fn signed_list(
        &self,
        query: &str,
        secret_key: &str,
        sdk_date: &str,
    ) -> reqwest::RequestBuilder {
        let path = format!("/v5/{}/image/registries", self.project_id);
        let host = self.running.address().to_string();
        let canonical = format!(
            "GET\n{path}/\n{query}\nhost:{host}\nx-project-id:{}\nx-sdk-date:{sdk_date}\n\nhost;x-project-id;x-sdk-date\n{}",
            self.project_id,
            hex::encode(Sha256::digest(b"")),
        );
        let to_sign = format!(
            "SDK-HMAC-SHA256\n{sdk_date}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        self.client
            .get(format!("{}{path}?{query}", self.running.base_url()))
            .header("X-Project-Id", &self.project_id)
            .header("X-Sdk-Date", sdk_date)
            .header(
                "Authorization",
                format!("SDK-HMAC-SHA256 Access={ACCESS_KEY}, SignedHeaders=host;x-project-id;x-sdk-date, Signature={signature}"),
            )
    }
}

pub(crate) fn now_sdk_date(offset_minutes: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(offset_minutes))
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Account name of the IAM user of [`with_iam_user`].
pub(crate) const IAM_DOMAIN: &str = "acme-cloud";
/// User name of the IAM user of [`with_iam_user`].
pub(crate) const IAM_USER: &str = "hss-sync";
/// Password of the IAM user of [`with_iam_user`].
pub(crate) const IAM_PASSWORD: &str = "Corr3ct horse!";

/// AK/SK and an IAM user, over two regions with three projects.
pub(crate) fn with_iam_user() -> SimConfig {
    SimConfig {
        regions: vec!["ap-southeast-1".into()],
        n_projects: 3,
        iam_user: Some(super::SimIamUser {
            domain: IAM_DOMAIN.into(),
            user: IAM_USER.into(),
            password: IAM_PASSWORD.into(),
        }),
        ..with_credentials()
    }
}

pub(crate) fn with_credentials() -> SimConfig {
    SimConfig {
        credentials: Some(SimCredentials {
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
        }),
        ..SimConfig::default()
    }
}
