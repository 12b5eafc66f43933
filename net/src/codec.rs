//! Request headers in, responses out.
//!
//! A request frame is: `api_key: i16`, `api_version: i16`, then the rest of
//! the request header (v1 or, for flexible versions, v2 with tagged
//! fields), then the body. A response frame is the 4-byte size, the
//! response header (correlation id; tagged fields for flexible versions,
//! except ApiVersions, whose response header is always v0) and the body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::{legacy, versions};

/// A request whose header is decoded; the body is decoded by its handler.
#[derive(Debug, Clone)]
pub struct Request {
    pub header: RequestHeader,
    pub api: ApiKey,
    pub version: i16,
    /// The body's bytes (a slice of the frame), in the layout of
    /// `body_version`.
    pub body: Bytes,
    /// `version`, or for a version older than the codec knows, the oldest
    /// it does: the body was rewritten in its layout ([`crate::legacy`]),
    /// and the response is encoded in it, then rewritten back.
    pub body_version: i16,
    /// An ApiVersions request of a version we do not serve: answered with
    /// `UNSUPPORTED_VERSION` in version 0 (KIP-511).
    pub unsupported_api_versions: bool,
}

#[derive(Debug)]
pub enum DecodeError {
    /// An API key Corelog does not serve (or that does not exist).
    UnknownApi(i16),
    /// A version outside the served range of a served API.
    UnsupportedVersion { api: ApiKey, version: i16 },
    /// The header (or the body) does not decode.
    Malformed { api: i16, version: i16, reason: String },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::UnknownApi(k) => write!(f, "unsupported API key {k}"),
            DecodeError::UnsupportedVersion { api, version } => {
                write!(f, "unsupported version {version} of {api:?}")
            }
            DecodeError::Malformed { api, version, reason } => {
                write!(f, "malformed request (API {api} v{version}): {reason}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes the header of a request frame.
pub fn decode_request(mut frame: Bytes) -> Result<Request, DecodeError> {
    if frame.len() < 4 {
        return Err(DecodeError::Malformed { api: -1, version: -1, reason: "short header".into() });
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApi(key))?;
    let Some((_, max)) = versions::range(api) else {
        return Err(DecodeError::UnknownApi(key));
    };
    let unsupported_api_versions = api == ApiKey::ApiVersions && version > max;
    if !versions::supports(api, version) && !unsupported_api_versions {
        return Err(DecodeError::UnsupportedVersion { api, version });
    }
    // An unknown, newer ApiVersions is parsed with the newest header we know.
    let header_version = match legacy::header_versions(api, version) {
        Some((request, _)) => request,
        None => api.request_header_version(version.min(max)),
    };
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| DecodeError::Malformed { api: key, version, reason: e.to_string() })?;
    let (body, body_version) = match legacy::upgraded_version(api, version) {
        None => (frame, version),
        Some(to) => {
            let body = legacy::upgrade(api, version, &frame)
                .map_err(|reason| DecodeError::Malformed { api: key, version, reason })?;
            (body, to)
        }
    };
    Ok(Request { header, api, version, body, body_version, unsupported_api_versions })
}

impl Request {
    /// Decodes the body as `T`. Bytes after the body are ignored, as Kafka
    /// ignores them: librdkafka 2.x sends some Metadata v12 requests with
    /// three trailing bytes.
    pub fn decode_body<T: Decodable>(&self) -> Result<T, DecodeError> {
        let mut body = self.body.clone();
        T::decode(&mut body, self.body_version).map_err(|e| DecodeError::Malformed {
            api: self.api as i16,
            version: self.version,
            reason: e.to_string(),
        })
    }
}

/// Encodes a whole response frame (size, header, body) for `request`,
/// in `version` (the request's, except for the KIP-511 fallback).
pub fn encode_response<T: Encodable>(
    request: &Request,
    version: i16,
    body: &T,
) -> Result<Bytes, String> {
    let header_version = if request.api == ApiKey::ApiVersions {
        0
    } else if let Some((_, response)) = legacy::header_versions(request.api, version) {
        response
    } else {
        request.api.response_header_version(version)
    };
    let header = ResponseHeader::default().with_correlation_id(request.header.correlation_id);
    if version != request.body_version && version == request.version {
        // An old version: encoded in the body's layout, then rewritten.
        let mut modern = Vec::with_capacity(body.compute_size(request.body_version).unwrap_or(0));
        body.encode(&mut modern, request.body_version).map_err(|e| e.to_string())?;
        let old = legacy::downgrade(request.api, version, &modern)?;
        let size = header.compute_size(header_version).map_err(|e| e.to_string())? + old.len();
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(size as i32);
        header.encode(&mut buf, header_version).map_err(|e| e.to_string())?;
        buf.extend_from_slice(&old);
        return Ok(buf.freeze());
    }
    let size = header.compute_size(header_version).map_err(|e| e.to_string())?
        + body.compute_size(version).map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version).map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    debug_assert_eq!(buf.len(), 4 + size);
    Ok(buf.freeze())
}

/// Encodes a whole request frame (size, header, body): what a client (or
/// a broker's replica fetcher) sends.
pub fn encode_request<T: Encodable>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    client_id: &'static str,
    body: &T,
) -> Result<Vec<u8>, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str(client_id)));
    let header_version = api.request_header_version(version);
    let size = header.compute_size(header_version).map_err(|e| e.to_string())?
        + body.compute_size(version).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version).map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    debug_assert_eq!(buf.len(), 4 + size);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame(api: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header.encode(&mut buf, api.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_header_and_body() {
        let req = decode_request(frame(ApiKey::Metadata, 12, &MetadataRequest::default())).unwrap();
        assert_eq!((req.api, req.version, req.header.correlation_id), (ApiKey::Metadata, 12, 42));
        let _: MetadataRequest = req.decode_body().unwrap();
    }

    #[test]
    fn unknown_apis_and_versions_are_refused() {
        let mut f = BytesMut::from(&frame(ApiKey::Metadata, 1, &MetadataRequest::default())[..]);
        f[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(decode_request(f.freeze()), Err(DecodeError::UnknownApi(999))));
        let f = frame(ApiKey::Fetch, 4, &kafka_protocol::messages::FetchRequest::default());
        let mut f = BytesMut::from(&f[..]);
        f[2..4].copy_from_slice(&17i16.to_be_bytes());
        assert!(matches!(decode_request(f.freeze()), Err(DecodeError::UnsupportedVersion { .. })));
    }

    #[test]
    fn newer_api_versions_falls_back() {
        let f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut f = BytesMut::from(&f[..]);
        f[2..4].copy_from_slice(&9i16.to_be_bytes());
        let req = decode_request(f.freeze()).unwrap();
        assert!(req.unsupported_api_versions);
    }

    /// A header followed by `body`, for hand-made bodies.
    fn raw(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let f = frame(api, version, &MetadataRequest::default());
        let header_len = f.len() - MetadataRequest::default().compute_size(version).unwrap();
        let mut out = BytesMut::from(&f[..header_len]);
        out.extend_from_slice(body);
        out.freeze()
    }

    /// Counts and lengths that claim more than the frame holds are refused
    /// before anything is reserved for them (issue 12: a 30-byte request
    /// asking for 2^31 topics made the broker abort on a failed allocation).
    #[test]
    fn absurd_counts_are_malformed_not_allocated() {
        // Metadata v1: a topics array of i32::MAX entries, then one byte.
        let req = decode_request(raw(ApiKey::Metadata, 1, &[0x7f, 0xff, 0xff, 0xff, 0])).unwrap();
        let err = req.decode_body::<MetadataRequest>().unwrap_err();
        assert!(err.to_string().contains("cannot fit"), "{err}");
        // Metadata v12 (flexible): a compact array of u32::MAX - 1 entries.
        let req =
            decode_request(raw(ApiKey::Metadata, 12, &[0xff, 0xff, 0xff, 0xff, 0x0f])).unwrap();
        assert!(req.decode_body::<MetadataRequest>().is_err());
        // Produce v3: no transactional id, acks, timeout, then i32::MAX topics.
        let body = [0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff];
        let req = decode_request(raw(ApiKey::Produce, 3, &body)).unwrap();
        let err = req.decode_body::<kafka_protocol::messages::ProduceRequest>().unwrap_err();
        assert!(err.to_string().contains("cannot fit"), "{err}");
    }

    #[test]
    fn truncated_bodies_are_malformed_and_trailing_bytes_ignored() {
        let topics =
            Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(kafka_protocol::messages::TopicName(StrBytes::from_static_str(
                    "t",
                ))))]);
        let f = frame(ApiKey::Metadata, 1, &MetadataRequest::default().with_topics(topics));
        let short = decode_request(f.slice(..f.len() - 1)).unwrap();
        assert!(short.decode_body::<MetadataRequest>().is_err());
        let mut long = BytesMut::from(&f[..]);
        long.put_u8(7);
        let req = decode_request(long.freeze()).unwrap();
        assert!(req.decode_body::<MetadataRequest>().is_ok());
    }
}
