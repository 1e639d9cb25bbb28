//! Request dispatch: processors registered by request code.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};

use crate::channel::Channel;
use crate::error::ProcessError;

/// What a processor returns: a response, no response (oneway semantics, or a reply the
/// processor sends itself later), or an error the transport answers for it.
pub type ProcessResult = Result<Option<RemotingCommand>, ProcessError>;

/// Handles requests of one or more codes. The transport copies the request's opaque into
/// the response, sets the response flag and drops responses to oneway requests.
#[async_trait]
pub trait RequestProcessor: Send + Sync + 'static {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult;
}

/// Told when connections open and close (the namesrv forgets a broker whose connection
/// closed; the broker forgets the clients of a closed channel).
pub trait ChannelEventListener: Send + Sync + 'static {
    fn on_connect(&self, _channel: &Channel) {}
    fn on_close(&self, _channel: &Channel) {}
}

/// The processor table of one server or client.
#[derive(Clone, Default)]
pub struct Dispatcher {
    processors: HashMap<i32, Arc<dyn RequestProcessor>>,
    fallback: Option<Arc<dyn RequestProcessor>>,
    listeners: Vec<Arc<dyn ChannelEventListener>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut codes: Vec<_> = self.processors.keys().copied().collect();
        codes.sort_unstable();
        f.debug_struct("Dispatcher")
            .field("codes", &codes)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Dispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `codes` to `processor`; a later registration of the same code replaces it.
    pub fn register(
        &mut self,
        codes: &[RequestCode],
        processor: Arc<dyn RequestProcessor>,
    ) -> &mut Self {
        for code in codes {
            self.processors.insert(code.as_i32(), processor.clone());
        }
        self
    }

    /// Handles every code nothing else is registered for.
    pub fn set_fallback(&mut self, processor: Arc<dyn RequestProcessor>) -> &mut Self {
        self.fallback = Some(processor);
        self
    }

    pub fn add_listener(&mut self, listener: Arc<dyn ChannelEventListener>) -> &mut Self {
        self.listeners.push(listener);
        self
    }

    pub(crate) fn processor(&self, code: i32) -> Option<&Arc<dyn RequestProcessor>> {
        self.processors.get(&code).or(self.fallback.as_ref())
    }

    pub(crate) fn notify_connect(&self, channel: &Channel) {
        for listener in &self.listeners {
            listener.on_connect(channel);
        }
    }

    pub(crate) fn notify_close(&self, channel: &Channel) {
        for listener in &self.listeners {
            listener.on_close(channel);
        }
    }
}

/// The answer to a request code nobody handles, worded as Java words it.
pub fn not_supported(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request, ResponseCode::RequestCodeNotSupported)
        .with_remark(format!(" request type {} not supported", request.code))
}
