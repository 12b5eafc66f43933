//! A broker's error answer as a typed error: the Kafka error code, its name
//! as Kafka spells it (`TOPIC_ALREADY_EXISTS`), and the broker's message.
//!
//! Owns the code-to-name table (from the `kafka-protocol` crate); it must
//! not decide what a caller does about an error (retry, rejoin, ignore).

use net::kafka_protocol::error::ResponseError;
use net::kafka_protocol::protocol::StrBytes;

/// An error code other than 0 in a broker's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    /// The broker's own words, when the response carries any.
    pub message: Option<String>,
}

impl KafkaError {
    pub fn new(code: i16, message: Option<&StrBytes>) -> KafkaError {
        KafkaError { code, message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()) }
    }

    /// The error's name as Kafka spells it, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn name(&self) -> String {
        error_name(self.code)
    }

    pub fn is(&self, e: ResponseError) -> bool {
        self.code == e.code()
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{}: {m}", self.name()),
            None => f.write_str(&self.name()),
        }
    }
}

impl std::error::Error for KafkaError {}

/// `Ok` for code 0, the [`KafkaError`] otherwise.
pub fn check(code: i16, message: Option<&StrBytes>) -> Result<(), KafkaError> {
    if code == 0 {
        Ok(())
    } else {
        Err(KafkaError::new(code, message))
    }
}

/// Kafka's name of error `code`: the crate's variant name in upper snake
/// case, which is how Kafka's `Errors` enum spells them.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Whether `e` (anywhere in its chain) is a broker's answer with `code`.
pub fn has_code(e: &anyhow::Error, code: ResponseError) -> bool {
    e.chain().any(|c| c.downcast_ref::<KafkaError>().is_some_and(|k| k.is(code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafka_s() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
        let e = KafkaError::new(40, Some(&StrBytes::from_static_str("retention.ms: not a number")));
        assert_eq!(e.to_string(), "INVALID_CONFIG: retention.ms: not a number");
    }
}
