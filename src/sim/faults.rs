//! Injectable faults: the one [`Fault`] enum (also the JSON of `POST /sim/faults`, tagged by `kind`),
//! the documentation of each kind that `GET /sim/faults` serves, and how each fault meets a request.
//!
//! Faults meet a request where the matching layer of Huawei's stack would:
//! 1. [`Fault::Latency`] draws when every HSS, IAM and EPS request is answered, as it arrives: its
//!    delay after arrival, whatever the simulator's own work took.
//! 2. After authentication, the gateway faults [`Fault::ThrottleEveryNth`] and [`Fault::Quota`] may
//!    answer 429 `APIG.0308` (APIG throttles per authenticated user, before the backend sees the call).
//! 3. After the project check, [`Fault::Forbidden`] answers 403 `HSS.0013`.
//! 4. After parameter validation, the first matching `FailPage`, `RateLimited`, `FailEnterpriseProject`,
//!    `MalformedJson`, `RawPage`, `Hang` or `ServerError` fault (in the order the faults were added)
//!    answers the request; `MaxPageItems`, `WrongTotalNum` and `OmitTotalNum` shape the page.
//! 5. After a page was answered, [`Fault::DriftDuringWalk`] may change the estate.
//!
//! Every request a fault answers is still counted and logged.
//!
//! In JSON, durations are whole milliseconds (`min_ms`, `max_ms`) or seconds (`window_seconds`,
//! fractions allowed), a field that is not the kind's is rejected by name, and every `project_id`,
//! `offset` and `times` may be omitted, meaning "any" or "forever".

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::State;

/// APIG's message for HSS's documented limit of 5 requests a minute (docs/huawei-api.md §7).
const HSS_THROTTLING_MESSAGE: &str =
    "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute";

/// A failure to inject. Unless a variant says otherwise, faults affect ListRegistry only; the module
/// docs say where each one meets a request. The serde form is the JSON of `POST /sim/faults`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Fail ListRegistry for this project (None = any) at this offset (None = any) with this HTTP status
    /// and a Huawei error body, `times` times (None = forever).
    FailPage {
        /// Project to fail, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// Effective offset (after defaulting) to fail, or any.
        #[serde(default)]
        offset: Option<u32>,
        /// HTTP status, e.g. 429 or 500.
        #[serde(deserialize_with = "http_status")]
        status: u16,
        /// `error_code` of the body, e.g. `APIG.0308`.
        error_code: String,
        /// `error_msg` of the body.
        error_msg: String,
        /// How many requests to fail before the fault disappears; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// APIG's throttling answer, HTTP 429 `APIG.0308` with the message for HSS's limit of 5 a minute,
    /// for this project (None = any), `times` times (None = forever): a [`Fault::FailPage`] with
    /// APIG's own words.
    RateLimited {
        /// Project to throttle, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// How many requests to throttle; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// Fail ListRegistry for one enterprise project (of this project, or any) with this HTTP status and
    /// a Huawei error body, `times` times (None = forever): one scope fails while the other enterprise
    /// projects of its project answer. `all_granted_eps` requests are not affected.
    FailEnterpriseProject {
        /// Project to fail, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// The enterprise project (`enterprise_project_id` after defaulting to `"0"`) to fail.
        enterprise_project_id: String,
        /// HTTP status, e.g. 500.
        #[serde(deserialize_with = "http_status")]
        status: u16,
        /// `error_code` of the body.
        error_code: String,
        /// `error_msg` of the body.
        error_msg: String,
        /// How many requests to fail before the fault disappears; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// Return a syntactically broken JSON body, the first half of the real page, with status 200;
    /// `truncated_body` in JSON is the same fault.
    #[serde(alias = "truncated_body")]
    MalformedJson {
        /// Project to affect, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// Effective offset to affect, or any.
        #[serde(default)]
        offset: Option<u32>,
        /// How many requests to affect; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// Cap every page at this many items regardless of limit (the real API may return fewer than
    /// limit); `{"kind":"max_page_items","max_items":7}` in JSON.
    #[serde(with = "max_items")]
    MaxPageItems(usize),
    /// Report total_num as this value instead of the true count (inconsistency tests).
    WrongTotalNum {
        /// Project to affect, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// The `total_num` to report.
        total_num: i64,
    },
    /// Answer every HSS, IAM and EPS request a time drawn uniformly from `min..=max` after it arrived
    /// (the simulator's own work included), from a generator seeded with the estate seed (the same
    /// sequence of requests gets the same delays).
    Latency {
        /// Shortest delay; `min_ms` in JSON.
        #[serde(rename = "min_ms", with = "milliseconds")]
        min: Duration,
        /// Longest delay, `max_ms` in JSON; a `max` below `min` counts as `min`.
        #[serde(rename = "max_ms", with = "milliseconds")]
        max: Duration,
    },
    /// Answer every `n`th ListRegistry request (counted from when the fault was added, among requests
    /// that passed authentication) with 429 `APIG.0308` and APIG's usual message for HSS's documented
    /// limit (`limit:5,time:1 minute`). `n = 0` never fires.
    ThrottleEveryNth {
        /// Period of the throttling.
        n: u32,
        /// Value of the `Retry-After` header, none when `None`.
        #[serde(default)]
        retry_after_seconds: Option<u32>,
    },
    /// APIG's per-user, per-API limit: at most `max_requests` ListRegistry requests per access key (per
    /// token for token auth) in any sliding `window`; excess requests get 429 `APIG.0308` with the limit in
    /// the message, and do not use up quota. Real HSS allows 5 per minute (docs/huawei-api.md §7).
    Quota {
        /// Requests allowed per window and user.
        max_requests: u32,
        /// The sliding window; `window_seconds` in JSON, fractions allowed, more than 0.
        #[serde(rename = "window_seconds", with = "seconds")]
        window: Duration,
        /// Send `Retry-After`: seconds until a slot frees, rounded up, at least 1.
        #[serde(default)]
        retry_after: bool,
    },
    /// Never answer (the handler waits [`super::HANG_DURATION`], then answers 504), so the client's
    /// timeout must fire. Hung requests are released when the server shuts down or the faults are
    /// cleared.
    Hang {
        /// Project to affect, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// Effective offset to affect, or any.
        #[serde(default)]
        offset: Option<u32>,
        /// How many requests to affect; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// ListRegistry for this project answers 403 `HSS.0013` "Insufficient permissions" until the faults
    /// are cleared (a project the credentials may list in IAM but not read in HSS).
    Forbidden {
        /// The project to forbid.
        project_id: String,
    },
    /// After `after_requests` ListRegistry requests for the project (None = whichever project reaches the
    /// count first) were answered with a page, delete the first `n_delete` registries of the list the
    /// request paged and insert `n_insert` new ones at its front, as concurrent changes would; offset
    /// paging then skips and repeats items. The counter restarts after each trigger; `times` triggers
    /// (None = forever). A later walk sees the changed, consistent list.
    DriftDuringWalk {
        /// Project to watch, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// Answered requests for the project before the drift happens.
        after_requests: u32,
        /// Registries inserted at the front.
        #[serde(default)]
        n_insert: usize,
        /// Registries deleted from the front.
        #[serde(default)]
        n_delete: usize,
        /// How many times to drift; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// Answer ListRegistry with status 200 and exactly `body`, whatever it is: `{}`,
    /// `{"data_list": null}`, an error body, a page without `total_num`, items without `id`. These are
    /// the odd answers a client must take for a failed page, never for an empty scope.
    RawPage {
        /// Project to affect, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// Effective offset to affect, or any.
        #[serde(default)]
        offset: Option<u32>,
        /// The response body, sent as it is with `Content-Type: application/json`; in JSON a string
        /// (it need not be JSON itself).
        body: String,
        /// How many requests to affect; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// Serve the real page without its `total_num` key (a gateway or a backend version that drops it).
    OmitTotalNum {
        /// Project to affect, or any.
        #[serde(default)]
        project_id: Option<String>,
        /// Effective offset to affect, or any.
        #[serde(default)]
        offset: Option<u32>,
        /// How many pages to shape so; None = forever.
        #[serde(default)]
        times: Option<u32>,
    },
    /// Answer every `every_nth` ListRegistry request (among those that passed validation) with a
    /// transient server error: 502, 503 and 504 carry APIG's `APIG.0201` (backend unavailable or timeout,
    /// docs/huawei-api.md §5); 500 carries `HSS.1001` "internal server error", a code this simulator
    /// chose because Huawei's HSS error table names none for it. `every_nth = 0` never fires.
    ServerError {
        /// HTTP status, normally 500, 502, 503 or 504.
        #[serde(deserialize_with = "http_status")]
        status: u16,
        /// Period of the failures.
        every_nth: u32,
    },
}

impl Fault {
    /// APIG's throttling answer (HTTP 429, `APIG.0308`) for `project_id` (None = any), `times` times.
    pub fn rate_limited(project_id: Option<String>, times: Option<u32>) -> Fault {
        Fault::RateLimited { project_id, times }
    }

    /// APIG's answer when the HSS backend is down (HTTP 502, `APIG.0201`) for `project_id` at `offset`.
    pub fn backend_unavailable(
        project_id: Option<String>,
        offset: Option<u32>,
        times: Option<u32>,
    ) -> Fault {
        Fault::FailPage {
            project_id,
            offset,
            status: 502,
            error_code: "APIG.0201".to_string(),
            error_msg: "Backend unavailable".to_string(),
            times,
        }
    }

    /// A 200 response whose body is the first half of the real page's JSON. This is exactly
    /// [`Fault::MalformedJson`]; the name says what the client sees.
    pub fn truncated_body(
        project_id: Option<String>,
        offset: Option<u32>,
        times: Option<u32>,
    ) -> Fault {
        Fault::MalformedJson {
            project_id,
            offset,
            times,
        }
    }

    /// A 200 answer with exactly `body` (see [`Fault::RawPage`]) for `project_id` at `offset`.
    pub fn raw_page(
        project_id: Option<String>,
        offset: Option<u32>,
        body: impl Into<String>,
        times: Option<u32>,
    ) -> Fault {
        Fault::RawPage {
            project_id,
            offset,
            body: body.into(),
            times,
        }
    }

    /// Whether the fault can never fire, so adding it would change nothing.
    pub fn never_fires(&self) -> bool {
        matches!(
            self,
            Fault::FailPage { times: Some(0), .. }
                | Fault::RateLimited { times: Some(0), .. }
                | Fault::FailEnterpriseProject { times: Some(0), .. }
                | Fault::MalformedJson { times: Some(0), .. }
                | Fault::RawPage { times: Some(0), .. }
                | Fault::OmitTotalNum { times: Some(0), .. }
                | Fault::Hang { times: Some(0), .. }
                | Fault::DriftDuringWalk { times: Some(0), .. }
                | Fault::ThrottleEveryNth { n: 0, .. }
                | Fault::ServerError { every_nth: 0, .. }
        )
    }
}

/// One kind of fault as `GET /sim/faults` and the README document it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FaultKind {
    /// The `kind` tag.
    pub kind: &'static str,
    /// What the fault does.
    pub summary: &'static str,
    /// Fields that must be given.
    pub required: &'static [&'static str],
    /// Fields that may be omitted, and what omitting them means.
    pub optional: &'static [&'static str],
    /// A complete example body.
    pub example: &'static str,
}

/// Every fault kind `POST /sim/faults` takes, in the order of the [`Fault`] variants.
/// A unit test checks each entry against the deserializer: the example parses to its kind, dropping a
/// required field is refused, dropping every optional one is accepted, and no kind is missing.
pub const FAULT_KINDS: &[FaultKind] = &[
    FaultKind {
        kind: "fail_page",
        summary: "ListRegistry answers this status and Huawei error body",
        required: &["status", "error_code", "error_msg"],
        optional: &["project_id (any)", "offset (any)", "times (forever)"],
        example: r#"{"kind":"fail_page","offset":200,"status":500,"error_code":"HSS.9999","error_msg":"boom","times":1}"#,
    },
    FaultKind {
        kind: "rate_limited",
        summary: "ListRegistry answers APIG's 429 APIG.0308 for HSS's limit of 5 a minute",
        required: &[],
        optional: &["project_id (any)", "times (forever)"],
        example: r#"{"kind":"rate_limited","times":3}"#,
    },
    FaultKind {
        kind: "fail_enterprise_project",
        summary: "ListRegistry of one enterprise project answers this status and error body",
        required: &["enterprise_project_id", "status", "error_code", "error_msg"],
        optional: &["project_id (any)", "times (forever)"],
        example: r#"{"kind":"fail_enterprise_project","enterprise_project_id":"0","status":500,"error_code":"HSS.1001","error_msg":"boom"}"#,
    },
    FaultKind {
        kind: "malformed_json",
        summary: "status 200 with the first half of the page's JSON (alias truncated_body)",
        required: &[],
        optional: &["project_id (any)", "offset (any)", "times (forever)"],
        example: r#"{"kind":"malformed_json","offset":0,"times":1}"#,
    },
    FaultKind {
        kind: "max_page_items",
        summary: "every page holds at most max_items items, whatever the limit",
        required: &["max_items"],
        optional: &[],
        example: r#"{"kind":"max_page_items","max_items":7}"#,
    },
    FaultKind {
        kind: "wrong_total_num",
        summary: "pages report this total_num instead of the true count",
        required: &["total_num"],
        optional: &["project_id (any)"],
        example: r#"{"kind":"wrong_total_num","total_num":3}"#,
    },
    FaultKind {
        kind: "latency",
        summary: "every HSS, IAM and EPS request is answered a time drawn from min_ms..=max_ms milliseconds after it arrived",
        required: &["min_ms", "max_ms"],
        optional: &[],
        example: r#"{"kind":"latency","min_ms":50,"max_ms":400}"#,
    },
    FaultKind {
        kind: "throttle_every_nth",
        summary: "every n-th authenticated ListRegistry request answers 429 APIG.0308",
        required: &["n"],
        optional: &["retry_after_seconds (no Retry-After)"],
        example: r#"{"kind":"throttle_every_nth","n":3,"retry_after_seconds":2}"#,
    },
    FaultKind {
        kind: "quota",
        summary: "APIG's per-user sliding window: max_requests ListRegistry requests per window_seconds",
        required: &["max_requests", "window_seconds"],
        optional: &["retry_after (false)"],
        example: r#"{"kind":"quota","max_requests":5,"window_seconds":60,"retry_after":true}"#,
    },
    FaultKind {
        kind: "hang",
        summary: "ListRegistry never answers (until the faults are cleared or the server stops)",
        required: &[],
        optional: &["project_id (any)", "offset (any)", "times (forever)"],
        example: r#"{"kind":"hang","times":1}"#,
    },
    FaultKind {
        kind: "forbidden",
        summary: "ListRegistry of this project answers 403 HSS.0013 until the faults are cleared",
        required: &["project_id"],
        optional: &[],
        example: r#"{"kind":"forbidden","project_id":"f3453fc625799188ae90bfb5395d5ba1"}"#,
    },
    FaultKind {
        kind: "drift_during_walk",
        summary: "after after_requests answered pages, n_delete registries leave and n_insert arrive at the front of the list",
        required: &["after_requests"],
        optional: &["project_id (any)", "n_insert (0)", "n_delete (0)", "times (forever)"],
        example: r#"{"kind":"drift_during_walk","after_requests":1,"n_insert":3,"n_delete":2,"times":1}"#,
    },
    FaultKind {
        kind: "raw_page",
        summary: "ListRegistry answers status 200 with exactly this body (a string, JSON or not)",
        required: &["body"],
        optional: &["project_id (any)", "offset (any)", "times (forever)"],
        example: r#"{"kind":"raw_page","offset":0,"body":"{\"data_list\": null}","times":1}"#,
    },
    FaultKind {
        kind: "omit_total_num",
        summary: "the real page is served without its total_num",
        required: &[],
        optional: &["project_id (any)", "offset (any)", "times (forever)"],
        example: r#"{"kind":"omit_total_num","times":2}"#,
    },
    FaultKind {
        kind: "server_error",
        summary: "every every_nth ListRegistry request answers this status (500 HSS.1001, else APIG.0201)",
        required: &["status", "every_nth"],
        optional: &[],
        example: r#"{"kind":"server_error","status":503,"every_nth":4}"#,
    },
];

/// A fault and the bookkeeping that makes it periodic, windowed or counted.
pub(crate) struct ActiveFault {
    /// The fault as added.
    pub(crate) fault: Fault,
    /// Requests this fault has seen (`ThrottleEveryNth`, `ServerError`, `DriftDuringWalk` counters).
    pub(crate) n_seen: u64,
    /// Accepted request instants per user key, for [`Fault::Quota`].
    pub(crate) accepted: HashMap<String, VecDeque<Instant>>,
}

impl ActiveFault {
    /// A fault that has seen no request yet.
    pub(crate) fn new(fault: Fault) -> Self {
        ActiveFault {
            fault,
            n_seen: 0,
            accepted: HashMap::new(),
        }
    }
}

/// What APIG's throttling faults decided for one request: the 429 to send.
pub(crate) struct GatewayRejection {
    /// `error_msg` of the `APIG.0308` body.
    pub(crate) error_msg: String,
    /// `Retry-After` seconds to send, if any.
    pub(crate) retry_after: Option<u32>,
}

/// How the faults answer one ListRegistry request that passed validation.
pub(crate) enum PageAnswer {
    /// A Huawei error body with this status.
    Fail {
        /// HTTP status.
        status: u16,
        /// `error_code` of the body.
        error_code: String,
        /// `error_msg` of the body.
        error_msg: String,
    },
    /// [`Fault::Hang`]: hold the answer back.
    Hang,
    /// [`Fault::RawPage`]: status 200 and exactly this body.
    Raw(String),
    /// [`Fault::MalformedJson`]: the page, cut in half.
    Truncated,
}

impl PageAnswer {
    /// A Huawei error body with this status, code and message.
    fn fail(status: u16, error_code: &str, error_msg: &str) -> Self {
        PageAnswer::Fail {
            status,
            error_code: error_code.to_string(),
            error_msg: error_msg.to_string(),
        }
    }
}

/// What the page faults decided for one ListRegistry request.
pub(crate) struct PageFaults {
    /// The answer a fault gives instead of (or, for `Truncated`, on top of) the page, if any.
    pub(crate) answer: Option<PageAnswer>,
    /// The largest page to serve ([`Fault::MaxPageItems`]); `usize::MAX` without one.
    pub(crate) max_page_items: usize,
    /// The `total_num` to report instead of the true count ([`Fault::WrongTotalNum`]).
    pub(crate) reported_total: Option<i64>,
    /// Whether to drop `total_num` from the page ([`Fault::OmitTotalNum`]).
    pub(crate) omit_total_num: bool,
}

/// request of `user_key`. Returns the 429 answer, or `None` to let the request through; a rejected
/// request uses up no quota.
pub(crate) fn apply_gateway_faults(state: &mut State, user_key: &str) -> Option<GatewayRejection> {
    let now = Instant::now();
    let mut rejection: Option<(String, Option<u32>)> = None;
    let mut quota_slots = Vec::new();
    for (index, active) in state.faults.iter_mut().enumerate() {
        match &active.fault {
            Fault::ThrottleEveryNth {
                n,
                retry_after_seconds,
            } => {
                active.n_seen += 1;
                if rejection.is_none() && *n > 0 && active.n_seen.is_multiple_of(u64::from(*n)) {
                    rejection = Some((HSS_THROTTLING_MESSAGE.to_string(), *retry_after_seconds));
                }
            }
            Fault::Quota {
                max_requests,
                window,
                retry_after,
            } if rejection.is_none() => {
                let accepted = active.accepted.entry(user_key.to_string()).or_default();
                while accepted
                    .front()
                    .is_some_and(|&at| now.duration_since(at) >= *window)
                {
                    accepted.pop_front();
                }
                let max = *max_requests as usize;
                if accepted.len() >= max {
                    // The slot that frees first is the oldest of the `max` requests still in the window.
                    let seconds = accepted.get(accepted.len() - max).map_or(1, |&oldest| {
                        let wait = (oldest + *window).saturating_duration_since(now);
                        (wait.as_secs_f64().ceil() as u32).max(1)
                    });
                    rejection = Some((
                        throttling_message(*max_requests, *window),
                        retry_after.then_some(seconds),
                    ));
                } else {
                    quota_slots.push(index);
                }
            }
            _ => {}
        }
    }
    match rejection {
        Some((error_msg, retry_after)) => Some(GatewayRejection {
            error_msg,
            retry_after,
        }),
        None => {
            for index in quota_slots {
                state.faults[index]
                    .accepted
                    .entry(user_key.to_string())
                    .or_default()
                    .push_back(now);
            }
            None
        }
    }
}

/// Apply the page faults to one validated ListRegistry request for `request_project_id` at
/// `request_offset` of `request_enterprise_project_id` (both as defaulted): count, use up and remove them, and say how they answer.
pub(crate) fn page_faults(
    state: &mut State,
    request_project_id: &str,
    request_offset: u32,
    request_enterprise_project_id: &str,
) -> PageFaults {
    let mut max_page_items = usize::MAX;
    let mut reported_total: Option<i64> = None;
    let mut answer: Option<PageAnswer> = None;
    // The first `OmitTotalNum` that selects the request; used up only if a page is served.
    let mut omit_total_num: Option<usize> = None;
    let mut exhausted = Vec::new();
    let targets = |project: &Option<String>, offset: &Option<u32>| {
        selects_project(project, request_project_id) && offset.is_none_or(|o| o == request_offset)
    };
    for (index, active) in state.faults.iter_mut().enumerate() {
        let undecided = answer.is_none();
        // The answer of a fault that counts its uses, and its count.
        let counted: Option<(PageAnswer, &mut Option<u32>)> = match &mut active.fault {
            Fault::MaxPageItems(n) => {
                max_page_items = max_page_items.min(*n);
                None
            }
            Fault::WrongTotalNum {
                project_id,
                total_num,
            } => {
                if selects_project(project_id, request_project_id) {
                    reported_total = Some(*total_num);
                }
                None
            }
            Fault::FailPage {
                project_id,
                offset,
                status,
                error_code,
                error_msg,
                times,
            } if undecided && targets(project_id, offset) => {
                Some((PageAnswer::fail(*status, error_code, error_msg), times))
            }
            Fault::RateLimited { project_id, times }
                if undecided && selects_project(project_id, request_project_id) =>
            {
                let answer = PageAnswer::fail(429, "APIG.0308", HSS_THROTTLING_MESSAGE);
                Some((answer, times))
            }
            Fault::FailEnterpriseProject {
                project_id,
                enterprise_project_id,
                status,
                error_code,
                error_msg,
                times,
            } if undecided
                && selects_project(project_id, request_project_id)
                && enterprise_project_id == request_enterprise_project_id =>
            {
                Some((PageAnswer::fail(*status, error_code, error_msg), times))
            }
            Fault::MalformedJson {
                project_id,
                offset,
                times,
            } if undecided && targets(project_id, offset) => Some((PageAnswer::Truncated, times)),
            Fault::Hang {
                project_id,
                offset,
                times,
            } if undecided && targets(project_id, offset) => Some((PageAnswer::Hang, times)),
            Fault::RawPage {
                project_id,
                offset,
                body,
                times,
            } if undecided && targets(project_id, offset) => {
                Some((PageAnswer::Raw(body.clone()), times))
            }
            Fault::OmitTotalNum {
                project_id, offset, ..
            } => {
                if omit_total_num.is_none() && targets(project_id, offset) {
                    omit_total_num = Some(index);
                }
                None
            }
            Fault::ServerError { status, every_nth } => {
                active.n_seen += 1;
                if undecided
                    && *every_nth > 0
                    && active.n_seen.is_multiple_of(u64::from(*every_nth))
                {
                    let (error_code, error_msg) = server_error_body(*status);
                    answer = Some(PageAnswer::fail(*status, error_code, error_msg));
                }
                None
            }
            Fault::FailPage { .. }
            | Fault::RateLimited { .. }
            | Fault::FailEnterpriseProject { .. }
            | Fault::MalformedJson { .. }
            | Fault::RawPage { .. }
            | Fault::Hang { .. }
            | Fault::Latency { .. }
            | Fault::ThrottleEveryNth { .. }
            | Fault::Quota { .. }
            | Fault::Forbidden { .. }
            | Fault::DriftDuringWalk { .. } => None,
        };
        if let Some((decided, times)) = counted {
            answer = Some(decided);
            if consume(times) {
                exhausted.push(index);
            }
        }
    }
    let serves_page = matches!(answer, None | Some(PageAnswer::Truncated));
    let omit_total_num = match omit_total_num {
        Some(index) if serves_page => {
            if let Fault::OmitTotalNum { times, .. } = &mut state.faults[index].fault {
                if consume(times) {
                    exhausted.push(index);
                }
            }
            true
        }
        _ => false,
    };
    exhausted.sort_unstable();
    for index in exhausted.into_iter().rev() {
        state.faults.remove(index);
    }
    PageFaults {
        answer,
        max_page_items,
        reported_total,
        omit_total_num,
    }
}

/// Count an answered page for every [`Fault::DriftDuringWalk`] watching `project_id`, and drift the
/// project's list when one reaches its count.
/// `scope` is the enterprise project the request paged, `None` for `all_granted_eps`.
pub(crate) fn apply_drift_faults(state: &mut State, project_id: &str, scope: Option<&str>) {
    let mut drifts = Vec::new();
    let mut exhausted = Vec::new();
    for (index, active) in state.faults.iter_mut().enumerate() {
        if let Fault::DriftDuringWalk {
            project_id: watched,
            after_requests,
            n_insert,
            n_delete,
            times,
        } = &mut active.fault
        {
            if !selects_project(watched, project_id) {
                continue;
            }
            active.n_seen += 1;
            if active.n_seen >= u64::from(*after_requests) {
                active.n_seen = 0;
                drifts.push((*n_insert, *n_delete));
                if consume(times) {
                    exhausted.push(index);
                }
            }
        }
    }
    for index in exhausted.into_iter().rev() {
        state.faults.remove(index);
    }
    for (n_insert, n_delete) in drifts {
        state.n_drifts += 1;
        let seed = state.config.seed ^ state.n_drifts.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let summary = state
            .estate
            .drift_front(seed, project_id, scope, n_insert, n_delete);
        tracing::info!(
            project_id,
            n_added = summary.added.len(),
            n_deleted = summary.deleted.len(),
            "simulated hss project {project_id} drifted during a walk"
        );
    }
}

/// APIG's throttling message for a limit of `max_requests` per `window`.
pub(crate) fn throttling_message(max_requests: u32, window: Duration) -> String {
    let time = if window.as_millis().is_multiple_of(60_000) {
        format!("{} minute", window.as_secs() / 60)
    } else if window.as_millis().is_multiple_of(1000) {
        format!("{} second", window.as_secs())
    } else {
        format!("{} millisecond", window.as_millis())
    };
    format!(
        "The throttling threshold has been reached: policy user over ratelimit,limit:{max_requests},time:{time}"
    )
}

/// `error_code` and `error_msg` of a [`Fault::ServerError`] answer: an HSS internal error for 500,
/// APIG's backend errors otherwise.
pub(crate) fn server_error_body(status: u16) -> (&'static str, &'static str) {
    match status {
        500 => ("HSS.1001", "internal server error, please try again later"),
        503 => ("APIG.0201", "Backend unavailable"),
        504 => ("APIG.0201", "Backend timeout"),
        _ => ("APIG.0201", "Backend unavailable"),
    }
}

/// Count one use of a fault; true when it is used up and must be removed.
fn consume(times: &mut Option<u32>) -> bool {
    match times {
        None => false,
        Some(remaining) => {
            *remaining = remaining.saturating_sub(1);
            *remaining == 0
        }
    }
}

/// Whether a fault's optional project filter selects `project_id` (None selects every project).
fn selects_project(filter: &Option<String>, project_id: &str) -> bool {
    filter.as_deref().is_none_or(|wanted| wanted == project_id)
}

impl State {
    /// The delay [`Fault::Latency`] imposes on the next request, if such a fault is active.
    pub(crate) fn next_latency(&mut self) -> Option<Duration> {
        let (min, max) = self.faults.iter().find_map(|f| match f.fault {
            Fault::Latency { min, max } => Some((min, max.max(min))),
            _ => None,
        })?;
        let span = u64::try_from((max - min).as_micros()).unwrap_or(u64::MAX);
        Some(min + Duration::from_micros(self.latency_rng.gen_range(0..=span)))
    }
}

/// Deserialize an HTTP status, refusing a number outside 100..=599.
fn http_status<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let status = u16::deserialize(deserializer)?;
    if (100..=599).contains(&status) {
        Ok(status)
    } else {
        Err(serde::de::Error::custom(format!(
            "status {status} is not an http status"
        )))
    }
}

/// A [`Duration`] as whole milliseconds.
mod milliseconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// A [`Duration`] as seconds, fractions allowed, more than 0.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds)
            .ok()
            .filter(|window| !window.is_zero())
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "window_seconds {seconds} is not a positive number of seconds"
                ))
            })
    }
}

/// [`Fault::MaxPageItems`]'s number as the object `{"max_items": n}`, since a tagged enum cannot
/// carry a bare number.
mod max_items {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// The JSON fields of `max_page_items`.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MaxItems {
        /// The largest page.
        max_items: usize,
    }

    pub(super) fn serialize<S: Serializer>(
        max_items: &usize,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        MaxItems {
            max_items: *max_items,
        }
        .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<usize, D::Error> {
        MaxItems::deserialize(deserializer).map(|fields| fields.max_items)
    }
}

#[cfg(test)]
mod tests;
