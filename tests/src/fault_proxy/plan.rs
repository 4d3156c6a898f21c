//! The fault plan: what to do with a request ([`Action`]), which requests a
//! rule fires on ([`When`], [`Rule`]), and the running plan that counts and
//! draws for each request ([`ActivePlan`]).

use std::time::Duration;

use http::{Method, Uri};

/// What the proxy does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer without forwarding: the given status with an Azure-style error body
    /// (see [`ErrorFormat`](super::ErrorFormat)) and the headers `x-ms-error-code`,
    /// `x-ms-request-id` and `x-ms-version` (echoed from the request, when it has one).
    /// The request body is read first, so the connection stays usable.
    Status {
        /// HTTP status, e.g. `503`.
        status: u16,
        /// Storage error code, sent as `x-ms-error-code` and in the body, e.g. `ServerBusy`.
        code: String,
        /// Sent as `Retry-After` in whole seconds, rounded up.
        retry_after: Option<Duration>,
        /// Sent as both `retry-after-ms` and `x-ms-retry-after-ms`.
        retry_after_ms: Option<u64>,
    },
    /// Read the request head and at most the first chunk of its body, then reset the TCP
    /// connection (`SO_LINGER` 0, so the client sees `RST`). Nothing reaches the upstream.
    ResetMidRequest,
    /// Forward the whole request, wait for the upstream's whole response, then close the
    /// client connection without sending any of it. The upstream *did* act on the request.
    DropResponse,
    /// Forward after this delay. The request reaches the upstream after the delay even when
    /// the client has given up waiting (as a real service finishes work whose caller timed out).
    Delay(Duration),
    /// Forward unchanged.
    Pass,
}

impl Action {
    /// `503 ServerBusy`, the storage service's "slow down".
    pub fn server_busy() -> Action {
        Action::status(503, "ServerBusy")
    }

    /// `429 TooManyRequests` with `Retry-After` (whole seconds, rounded up).
    pub fn too_many_requests(retry_after: Duration) -> Action {
        Action::Status {
            status: 429,
            code: "TooManyRequests".to_owned(),
            retry_after: Some(retry_after),
            retry_after_ms: None,
        }
    }

    /// Any status and error code, without retry hints.
    pub fn status(status: u16, code: &str) -> Action {
        Action::Status {
            status,
            code: code.to_owned(),
            retry_after: None,
            retry_after_ms: None,
        }
    }

    pub(super) fn label(&self) -> &'static str {
        match self {
            Action::Status { .. } => "status",
            Action::ResetMidRequest => "reset",
            Action::DropResponse => "drop-response",
            Action::Delay(_) => "delay",
            Action::Pass => "pass",
        }
    }
}

/// Which requests a [`Rule`] fires on, counted among the requests its matchers accept
/// (numbered from 0, in the order the proxy receives them).
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// Every matching request.
    Always,
    /// Matching requests `0..n`: a burst at the start.
    FirstN(u64),
    /// Matching requests `start..end`: a burst later on.
    Range {
        /// First request number the rule fires on.
        start: u64,
        /// First request number after the burst.
        end: u64,
    },
    /// Every n-th matching request: numbers `n-1`, `2n-1`, … (never when `n` is 0).
    EveryNth(u64),
    /// Each matching request with this probability, drawn from the plan's seeded generator.
    Probability(f64),
}

/// One line of a [`Plan`]: matchers, a schedule and the action taken when both agree.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    method: Option<Method>,
    path_contains: Option<String>,
    query_contains: Option<String>,
    when: When,
    action: Action,
}

impl Rule {
    /// A rule that takes `action` on every request; narrow it with the builder methods.
    pub fn new(action: Action) -> Rule {
        Rule {
            method: None,
            path_contains: None,
            query_contains: None,
            when: When::Always,
            action,
        }
    }

    /// Only requests with this method.
    pub fn method(mut self, method: Method) -> Rule {
        self.method = Some(method);
        self
    }

    /// Only requests whose path (as sent, percent-encoded) contains `needle`.
    pub fn path_contains(mut self, needle: &str) -> Rule {
        self.path_contains = Some(needle.to_owned());
        self
    }

    /// Only requests whose query string (as sent) contains `needle`, e.g. `comp=block`.
    pub fn query_contains(mut self, needle: &str) -> Rule {
        self.query_contains = Some(needle.to_owned());
        self
    }

    /// Fire on the matching requests this schedule selects.
    pub fn when(mut self, when: When) -> Rule {
        self.when = when;
        self
    }

    /// Shorthand for [`When::FirstN`].
    pub fn first_n(self, n: u64) -> Rule {
        self.when(When::FirstN(n))
    }

    /// Shorthand for [`When::Range`].
    pub fn between(self, start: u64, end: u64) -> Rule {
        self.when(When::Range { start, end })
    }

    /// Shorthand for [`When::EveryNth`].
    pub fn every_nth(self, n: u64) -> Rule {
        self.when(When::EveryNth(n))
    }

    /// Shorthand for [`When::Probability`].
    pub fn probability(self, p: f64) -> Rule {
        self.when(When::Probability(p))
    }

    fn matches(&self, method: &Method, uri: &Uri) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|n| uri.path().contains(n))
            && self
                .query_contains
                .as_deref()
                .is_none_or(|n| uri.query().unwrap_or("").contains(n))
    }
}

/// The fault plan: rules tried in order; the first that fires decides, and a request no rule
/// fires on passes.
///
/// Every rule whose matchers accept a request counts it (and a probabilistic rule draws for
/// it), whether or not an earlier rule fired, so each rule's schedule depends only on the
/// requests it matches. Rule `i` draws from its own generator seeded with `seed` and `i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    rules: Vec<Rule>,
    seed: u64,
}

impl Plan {
    /// An empty plan (everything passes), seed 0.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Everything passes.
    pub fn pass() -> Plan {
        Plan::default()
    }

    /// Appends a rule (tried after the ones already there).
    pub fn rule(mut self, rule: Rule) -> Plan {
        self.rules.push(rule);
        self
    }

    /// Seeds the generators of the [`When::Probability`] rules.
    pub fn seed(mut self, seed: u64) -> Plan {
        self.seed = seed;
        self
    }

    /// For soak tests: each request independently meets `503 ServerBusy` with probability
    /// `p_503`, `429 TooManyRequests` (with `retry-after-ms: 20`, so soaks stay fast) with
    /// `p_429`, [`Action::ResetMidRequest`] with `p_reset` and [`Action::DropResponse`] with
    /// `p_drop`, and passes otherwise. The probabilities should add up to at most 1.
    pub fn chaos(seed: u64, p_503: f64, p_429: f64, p_reset: f64, p_drop: f64) -> Plan {
        let throttled = Action::Status {
            status: 429,
            code: "TooManyRequests".to_owned(),
            retry_after: None,
            retry_after_ms: Some(20),
        };
        // Rules draw independently and the first that fires wins, so rule k fires with
        // p_k / (1 - p_1 - … - p_{k-1}) to be the winner with probability p_k.
        let mut plan = Plan::new().seed(seed);
        let mut left = 1.0_f64;
        for (p, action) in [
            (p_503, Action::server_busy()),
            (p_429, throttled),
            (p_reset, Action::ResetMidRequest),
            (p_drop, Action::DropResponse),
        ] {
            let conditional = if left > f64::EPSILON {
                (p / left).clamp(0.0, 1.0)
            } else {
                0.0
            };
            plan = plan.rule(Rule::new(action).probability(conditional));
            left -= p;
        }
        plan
    }
}

pub(super) struct ActivePlan {
    rules: Vec<ActiveRule>,
}

struct ActiveRule {
    rule: Rule,
    matched: u64,
    rng: fastrand::Rng,
}

impl ActivePlan {
    pub(super) fn new(plan: Plan) -> ActivePlan {
        let rules = plan
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| ActiveRule {
                rule,
                matched: 0,
                rng: fastrand::Rng::with_seed(
                    plan.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
            })
            .collect();
        ActivePlan { rules }
    }

    pub(super) fn decide(&mut self, method: &Method, uri: &Uri) -> Action {
        let mut chosen = None;
        for active in &mut self.rules {
            if !active.rule.matches(method, uri) {
                continue;
            }
            let n = active.matched;
            active.matched += 1;
            let fires = match active.rule.when {
                When::Always => true,
                When::FirstN(k) => n < k,
                When::Range { start, end } => (start..end).contains(&n),
                When::EveryNth(k) => k > 0 && (n + 1) % k == 0,
                When::Probability(p) => active.rng.f64() < p,
            };
            if fires && chosen.is_none() {
                chosen = Some(active.rule.action.clone());
            }
        }
        chosen.unwrap_or(Action::Pass)
    }
}
