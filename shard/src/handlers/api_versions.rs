//! ApiVersions: the table of `net::versions`, nothing else. A version
//! newer than we serve gets `UNSUPPORTED_VERSION` in version 0 with the
//! table (KIP-511), so the client can retry with one we serve.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond_in, HandlerResult};

pub fn handle(request: &Request) -> HandlerResult {
    let api_keys = net::versions::SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let mut response = ApiVersionsResponse::default().with_api_keys(api_keys);
    if request.unsupported_api_versions {
        response.error_code = ResponseError::UnsupportedVersion.code();
        return respond_in(request, 0, &response);
    }
    // The body (client software name and version) is informational; decode
    // it to refuse garbage.
    let _: kafka_protocol::messages::ApiVersionsRequest = request.decode_body()?;
    respond_in(request, request.version, &response)
}
