//! Why a pattern is refused.

/// Lambda's limit on the length of one filter pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 4096;

/// The most combinations `$or` may expand one pattern into. EventBridge refuses patterns past it
/// ("Complex example with `$or` matching" in its content-filtering guide); here it also bounds
/// what a hostile pattern costs, since each combination is matched on its own.
pub const MAX_OR_COMBINATIONS: usize = 1000;

/// Lambda's page that lists the comparison operators its event filtering supports.
pub const LAMBDA_FILTER_SYNTAX_URL: &str =
    "https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html#filtering-syntax";

/// The operators that page lists.
pub const LAMBDA_OPERATORS: &str =
    "equals, equals-ignore-case, prefix, suffix, anything-but, numeric, exists, $or";

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter pattern is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("filter pattern is {0} characters long; Lambda allows at most {MAX_PATTERN_CHARS}")]
    TooLong(usize),
    #[error("filter pattern must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("invalid filter pattern at `{path}`: {reason}")]
    Invalid { path: String, reason: String },
    /// An operator EventBridge has that Lambda's filter syntax does not list.
    #[error(
        "`{operator}` (at `{path}`) is an EventBridge operator that Lambda event filtering does \
         not support; Lambda supports {LAMBDA_OPERATORS} ({LAMBDA_FILTER_SYNTAX_URL})"
    )]
    NotInLambda {
        path: String,
        operator: &'static str,
    },
    #[error("`$or` expands this filter pattern into more than {MAX_OR_COMBINATIONS} combinations")]
    TooManyCombinations,
    #[error("Filters[{index}]: {error}")]
    InFilter {
        index: usize,
        error: Box<FilterError>,
    },
}

/// Builds `FilterError::Invalid`; the root's path is shown as `<root>`.
pub(crate) fn invalid(path: &str, reason: impl Into<String>) -> FilterError {
    FilterError::Invalid {
        path: if path.is_empty() { "<root>" } else { path }.to_owned(),
        reason: reason.into(),
    }
}

pub(crate) fn not_in_lambda(path: &str, operator: &'static str) -> FilterError {
    FilterError::NotInLambda {
        path: path.to_owned(),
        operator,
    }
}
