//! Routing one request: the account, authentication and `x-ms-version` are
//! checked, then a filesystem or a path operation runs.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http::{header, HeaderMap};

use super::error::{invalid_header, ApiError};
use super::state::State;
use super::wire::{is_version, parse_target, valid_filesystem_name, Ctx, Query, Resp};
use super::RecordedRequest;

/// Oldest `x-ms-version` that has the DFS API.
const OLDEST_DFS_VERSION: &str = "2018-11-09";
const BEARER_CHALLENGE: &str = "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize resource_id=https://storage.azure.com";

impl State {
    pub(super) fn route(&mut self, req: &RecordedRequest, ctx: &Ctx) -> Result<Resp, ApiError> {
        let target = parse_target(&req.uri)?;
        if target.account != self.account {
            return Err(ApiError::new(400, "InvalidUri")
                .detail("Account", &target.account)
                .detail("Note", "this test server holds one account"));
        }
        self.check_auth(&req.headers)?;
        check_version(&req.headers)?;
        let query = Query::parse(req.uri.query())?;
        let Some(fs) = target.filesystem else {
            return Err(ApiError::new(400, "InvalidUri").detail(
                "Note",
                "account operations are not implemented by this test server",
            ));
        };
        if !valid_filesystem_name(&fs) {
            return Err(ApiError::new(400, "InvalidResourceName").detail("Filesystem", &fs));
        }
        if target.path.is_empty() {
            self.filesystem_op(req, ctx, &fs, &query)
        } else {
            self.path_op(req, ctx, &fs, &target.path, &query)
        }
    }

    fn check_auth(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(401, "NoAuthenticationInformation")
                .header("www-authenticate", BEARER_CHALLENGE.to_owned()));
        };
        let malformed = || ApiError::new(400, "InvalidAuthenticationInfo");
        let value = value.to_str().map_err(|_| malformed())?;
        if let Some(rest) = value.strip_prefix("SharedKey ") {
            let (account, signature) = rest.split_once(':').ok_or_else(malformed)?;
            if account.is_empty() || signature.is_empty() {
                return Err(malformed());
            }
            if account != self.account {
                return Err(ApiError::new(403, "AuthenticationFailed").detail(
                    "AuthenticationErrorDetail",
                    format!(
                        "The account {account} in the Authorization header is not {}.",
                        self.account
                    ),
                ));
            }
            if B64.decode(signature).map(|s| s.len()).ok() != Some(32) {
                return Err(ApiError::new(403, "AuthenticationFailed").detail(
                    "AuthenticationErrorDetail",
                    "The signature is not the base64 encoding of an HMAC-SHA256.",
                ));
            }
            if !headers.contains_key("x-ms-date") && !headers.contains_key(header::DATE) {
                return Err(ApiError::new(403, "AuthenticationFailed").detail(
                    "AuthenticationErrorDetail",
                    "Request date header not specified.",
                ));
            }
            Ok(())
        } else if let Some(token) = value.strip_prefix("Bearer ") {
            if token.trim().is_empty() {
                return Err(malformed());
            }
            Ok(())
        } else {
            Err(malformed())
        }
    }
}

fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get("x-ms-version") else {
        return Err(
            ApiError::new(400, "MissingRequiredHeader").detail("HeaderName", "x-ms-version")
        );
    };
    let text = value.to_str().unwrap_or("");
    if !is_version(text) {
        return Err(invalid_header("x-ms-version", text));
    }
    if text < OLDEST_DFS_VERSION {
        return Err(ApiError::new(400, "UnsupportedRestVersion").detail("Version", text));
    }
    Ok(())
}
