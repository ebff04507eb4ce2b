//! The findings API's one error type, mapped to gRPC statuses and HTTP responses at the edges.

use crate::findings::store::StoreError;

/// Why a findings API call was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Occurs when an input is malformed; `field` names it (`filter[1]`, `maxResults`, …).
    #[error("{field}: {message}")]
    Invalid {
        /// The input at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Occurs when a finding does not exist or the caller may not see it (the two are
    /// indistinguishable on purpose).
    #[error("finding {id} not found")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// Occurs when the caller's certificate does not allow the findings API at all.
    #[error("{0}")]
    Forbidden(String),
    /// Occurs when the store fails.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Occurs when a blocking task dies.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// An [`ApiError::Invalid`] about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The input the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::NotFound { .. } => Some("findingId"),
            _ => None,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        match &e {
            ApiError::Invalid { .. } => Self::invalid_argument(e.to_string()),
            ApiError::NotFound { .. } => Self::not_found(e.to_string()),
            ApiError::Forbidden(_) => Self::permission_denied(e.to_string()),
            ApiError::Store(_) | ApiError::Internal(_) => Self::internal(e.to_string()),
        }
    }
}
