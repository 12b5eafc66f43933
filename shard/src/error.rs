//! The shard's typed errors: what a client is told when a request (or one
//! topic or partition of it) is refused, and why the controller gave no
//! answer.
//!
//! Pure values, used on every core. Kafka error codes are
//! [`ResponseError`]s up to the point where a handler writes a response.

use std::fmt;

use net::kafka_protocol::error::ResponseError;

/// A Kafka error for one part of a response, and the message that
/// explains it to the client (Kafka's `error_message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: ResponseError,
    pub message: String,
}

impl Refusal {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Refusal {
        Refusal { error, message: message.into() }
    }

    /// The code on the wire.
    pub fn code(&self) -> i16 {
        self.error.code()
    }

    /// The refusal a code read back from the wire stands for (0, which is
    /// no error, becomes `UNKNOWN_SERVER_ERROR`: a refusal always refuses).
    pub fn from_code(code: i16, message: impl Into<String>) -> Refusal {
        let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
        Refusal::new(error, message)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.error, self.message)
    }
}

/// Why the node's controller did not answer a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerError {
    /// The node is stopping: its controller (or its link to the active
    /// one) is gone.
    Stopped,
    /// No active controller answered within the command timeout.
    Unreachable(String),
    /// The metadata log could not commit a command that has no per-topic
    /// answer to carry the error (bootstrap, producer ids).
    Storage(String),
    /// An answer that does not fit the command (a bug on one side).
    Unexpected(String),
}

impl ControllerError {
    /// What a client is told: Kafka's brokers answer `NOT_CONTROLLER` while
    /// no controller can take a request, and clients retry it.
    pub fn refusal(&self) -> Refusal {
        let error = match self {
            ControllerError::Stopped | ControllerError::Unreachable(_) => {
                ResponseError::NotController
            }
            ControllerError::Storage(_) => ResponseError::KafkaStorageError,
            ControllerError::Unexpected(_) => ResponseError::UnknownServerError,
        };
        Refusal::new(error, self.to_string())
    }
}

impl fmt::Display for ControllerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControllerError::Stopped => write!(f, "controller unavailable: the node is stopping"),
            ControllerError::Unreachable(why) => write!(f, "controller unavailable: {why}"),
            ControllerError::Storage(why) => write!(f, "metadata log: {why}"),
            ControllerError::Unexpected(what) => write!(f, "unexpected controller answer: {what}"),
        }
    }
}

impl std::error::Error for ControllerError {}
