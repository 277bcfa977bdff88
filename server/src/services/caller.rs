//! Who calls a service, and through which door. Every adapter (portal, REST API,
//! chat) builds one per call; every audit event records it.

use std::ops::Deref;

use slipway_core::views::{TokenScope, UserView};

use crate::storage::audit::Origin;

/// The door a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Portal,
    Api,
    Chat,
    System,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Api => "api",
            Channel::Chat => "chat",
            Channel::System => "system",
        }
    }
}

/// What the transport knows about one call: the trace id it logs under, the
/// client's address, and who the caller is on the channel (a chat user id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallMeta {
    pub trace_id: Option<String>,
    pub client_addr: Option<String>,
    pub channel_user: Option<String>,
}

/// A signed-in person making one call through one channel.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserView,
    pub channel: Channel,
    pub meta: CallMeta,
    /// The API token the call was authenticated with, if any.
    pub token_id: Option<i64>,
    /// What the token allows; `None` for a session, which carries the user's full rights.
    pub scopes: Option<Vec<TokenScope>>,
    /// When the token expires (milliseconds since the epoch): a token it makes may
    /// not outlive it.
    pub token_expires_at: Option<i64>,
    /// The stored key of the portal session the call came with (its hash, never
    /// the id itself): a call that outlives a moment asks whether it still stands.
    pub session_key: Option<String>,
}

impl Caller {
    pub fn new(user: UserView, channel: Channel, meta: CallMeta) -> Caller {
        Caller {
            user,
            channel,
            meta,
            token_id: None,
            scopes: None,
            token_expires_at: None,
            session_key: None,
        }
    }

    pub fn origin(&self) -> Origin {
        Origin {
            channel: self.channel.as_str().to_string(),
            client_addr: self.meta.client_addr.clone(),
            trace_id: self.meta.trace_id.clone(),
            token_id: self.token_id,
            channel_user: self.meta.channel_user.clone(),
        }
    }
}

/// A caller is its user for every rule that asks who they are.
impl Deref for Caller {
    type Target = UserView;

    fn deref(&self) -> &UserView {
        &self.user
    }
}
