use std::net::SocketAddr;

/// Why the engine did not start (or stopped serving).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// template.yaml is malformed, or asks for what the engine does not emulate.
    #[error(transparent)]
    Template(#[from] sam_template::TemplateError),
    /// A function could not be hosted: no handler for it, a handler of the wrong kind for an
    /// event, a resource the engine does not have, or its configuration refused.
    #[error("{function}: {why}")]
    Function {
        function: String,
        #[source]
        why: HostError,
    },
    #[error("server limits: {0}")]
    Limits(#[from] crate::server::LimitError),
    #[error("the backlog bound must be at least 1 record")]
    NoBacklog,
    #[error("refusing to listen on {0}: the local engine serves loopback addresses only (127.0.0.1, ::1)")]
    NotLoopback(SocketAddr),
    /// The data dir, the database, a socket.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// Why one function could not be hosted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("no handler is registered for binary `{binary}` (this engine hosts: {known})")]
    NoHandler { binary: String, known: String },
    #[error("its configuration: {0}")]
    Config(#[from] config_vars::ConfigError),
    /// Its configuration refused a variable the engine left unset: it names what is not hosted.
    #[error(
        "its configuration: {error}; the engine left {unset} unset, as it hosts no such resource"
    )]
    NeedsUnhosted {
        error: Box<config_vars::ConfigError>,
        unset: Box<sam_template::Unset>,
    },
    #[error(transparent)]
    Resource(#[from] state::ResourceError),
    #[error("event {event}: a {source_kind} event, but `{binary}` is hosted as a {handler_kind} handler")]
    WrongKind {
        event: String,
        binary: String,
        source_kind: &'static str,
        handler_kind: &'static str,
    },
    /// Its `Environment` names what has no value here.
    #[error(transparent)]
    Environment(sam_template::TemplateError),
    #[error("event {event}: {name} is not the template's {kind}")]
    NotOurs {
        event: String,
        name: String,
        kind: &'static str,
    },
}
