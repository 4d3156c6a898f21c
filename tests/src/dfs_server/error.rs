//! Errors as the service reports them: status, `x-ms-error-code`, the
//! documented message, and the JSON body `{"error":{"code":..,"message":..}}`.

use std::fmt::Display;

use bytes::Bytes;
use http::{header, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

use super::wire::{finish, iso_time, Ctx, Resp, JSON_TYPE};

#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(super) fn new(status: u16, code: &'static str) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: documented_message(code).to_owned(),
            headers: Vec::new(),
        }
    }

    /// Adds a `Name:value` line to the message, as the service does for details.
    pub(super) fn detail(mut self, name: &str, value: impl Display) -> ApiError {
        self.message.push_str(&format!("\n{name}:{value}"));
        self
    }

    pub(super) fn header(mut self, name: &'static str, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }
}

pub(super) fn error_response(ctx: &Ctx, e: ApiError) -> Resp {
    let mut b = ctx.builder(e.status).header("x-ms-error-code", e.code);
    for (name, value) in &e.headers {
        b = b.header(*name, value.as_str());
    }
    if ctx.head || e.status == StatusCode::NOT_MODIFIED {
        return finish(b, Bytes::new());
    }
    let message = format!(
        "{}\nRequestId:{}\nTime:{}",
        e.message,
        ctx.request_id,
        iso_time(OffsetDateTime::now_utc())
    );
    let body = json!({ "error": { "code": e.code, "message": message } }).to_string();
    finish(
        b.header(header::CONTENT_TYPE, JSON_TYPE)
            .header(header::CONTENT_LENGTH, body.len()),
        Bytes::from(body),
    )
}

/// Messages of the specification's `ErrorResponse` list and the common error codes.
fn documented_message(code: &str) -> &'static str {
    match code {
        "AuthenticationFailed" => "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        "ConditionNotMet" => "The condition specified using HTTP conditional header(s) is not met.",
        "ContentLengthMustBeZero" => "The Content-Length request header must be zero.",
        "Crc64Mismatch" => "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.",
        "DirectoryNotEmpty" => "The recursive query parameter value must be true to delete a non-empty directory.",
        "FilesystemAlreadyExists" => "The specified filesystem already exists.",
        "FilesystemNotFound" => "The specified filesystem does not exist.",
        "InternalError" => "The server encountered an internal error. Please retry the request.",
        "InvalidAuthenticationInfo" => "Authentication information is not given in the correct format. Check the value of Authorization header.",
        "InvalidFlushPosition" => "The uploaded data is not contiguous or the position query parameter value is not equal to the length of the file after appending the uploaded data.",
        "InvalidHeaderValue" => "The value for one of the HTTP headers is not in the correct format.",
        "InvalidInput" => "One of the request inputs is not valid.",
        "InvalidMd5" => "The MD5 value specified in the request is invalid. The MD5 value must be 128 bits and Base64-encoded.",
        "InvalidPropertyName" => "The property name contains invalid characters.",
        "InvalidQueryParameterValue" => "Value for one of the query parameters specified in the request URI is invalid.",
        "InvalidRange" => "The range specified is invalid for the current size of the resource.",
        "InvalidResourceName" => "The specified resource name contains invalid characters.",
        "InvalidUri" => "The request URI is invalid.",
        "LeaseNotPresent" => "There is currently no lease on the resource.",
        "Md5Mismatch" => "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
        "MissingRequiredHeader" => "An HTTP header that's mandatory for this request is not specified.",
        "MissingRequiredQueryParameter" => "A query parameter that's mandatory for this request is not specified.",
        "NoAuthenticationInformation" => "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        "OperationTimedOut" => "The operation could not be completed within the permitted time.",
        "OutOfRangeInput" => "One of the request inputs is out of range.",
        "PathAlreadyExists" => "The specified path already exists.",
        "PathConflict" => "The specified path, or an element of the path, exists and its resource type is invalid for this operation.",
        "PathNotFound" => "The specified path does not exist.",
        "ResourceTypeMismatch" => "The resource type specified in the request does not match the type of the resource.",
        "ServerBusy" => "The server is currently unable to receive requests. Please retry your request.",
        "UnsupportedHeader" => "One of the headers specified in the request is not supported.",
        "UnsupportedHttpVerb" => "The resource doesn't support the specified HTTP verb.",
        "UnsupportedQueryParameter" => "One of the query parameters specified in the request URI is not supported.",
        "UnsupportedRestVersion" => "The specified Rest Version is Unsupported.",
        _ => "Fault injected by the DFS test server.",
    }
}

pub(super) fn missing_param(name: &str) -> ApiError {
    ApiError::new(400, "MissingRequiredQueryParameter").detail("QueryParameterName", name)
}

pub(super) fn invalid_param(name: &str, value: &str) -> ApiError {
    ApiError::new(400, "InvalidQueryParameterValue")
        .detail("QueryParameterName", name)
        .detail("QueryParameterValue", value)
}

pub(super) fn invalid_header(name: &str, value: &str) -> ApiError {
    ApiError::new(400, "InvalidHeaderValue")
        .detail("HeaderName", name)
        .detail("HeaderValue", value)
}

pub(super) fn fs_not_found() -> ApiError {
    ApiError::new(404, "FilesystemNotFound")
}

pub(super) fn path_not_found() -> ApiError {
    ApiError::new(404, "PathNotFound")
}

pub(super) fn condition_not_met() -> ApiError {
    ApiError::new(412, "ConditionNotMet")
}
