//! What a request does: create an asset, or run one of its type's day-2 actions
//! (resize, backup, restore, upgrade-templates, decommission) on an existing one.
//! The two have different flows: a backup is auto-approved and done in seconds,
//! a database's creation is reviewed and takes hours. Counted together, a team's
//! daily backups would drive the type's lead time towards seconds and its
//! auto-approval share towards 100%, and its creations could not be read. So every
//! figure is of one "what": creations by default, or one action, or (asked for)
//! every request together.

use super::*;
use crate::catalog::TypeAction;

/// The query's `action` value that asks for every request, creations and actions
/// together. Not an action name (those are letters, digits and '-'), so it never
/// stands for one.
pub const EVERY: &str = "*";

/// Which requests a figure counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum What {
    /// The requests that create an asset: the default.
    #[default]
    Creations,
    /// The requests for one day-2 action, by its name.
    Action(String),
    /// Every request, creations and actions together.
    Every,
}

impl What {
    /// Whether a row of a request whose day-2 action is `request_action` (`None`
    /// for a creation) counts.
    pub fn counts(&self, request_action: Option<&str>) -> bool {
        match self {
            What::Creations => request_action.is_none(),
            What::Action(name) => request_action == Some(name.as_str()),
            What::Every => true,
        }
    }

    /// As the API and the page's address say it: `None` for creations, the
    /// action's name, or [`EVERY`].
    pub fn as_param(&self) -> Option<String> {
        match self {
            What::Creations => None,
            What::Action(name) => Some(name.clone()),
            What::Every => Some(EVERY.to_string()),
        }
    }

    /// As a heading reads it.
    pub fn label(&self) -> String {
        label_of(self.as_param().as_deref())
    }
}

/// How a heading or a table names what a figure counts, from its `action` field.
pub fn label_of(action: Option<&str>) -> String {
    match action {
        None => "creations".to_string(),
        Some(EVERY) => "every request".to_string(),
        Some(name) => name.to_string(),
    }
}

impl FlowQuery {
    /// What the figures count: creations for an absent or empty `action`, every
    /// request for [`EVERY`], else the action named, or why the value cannot name
    /// one. An action removed from the catalog keeps its history, so any
    /// well-formed name is taken, declared today or not.
    pub fn what(&self) -> Result<What, String> {
        match self.action.as_deref().filter(|a| !a.is_empty()) {
            None => Ok(What::Creations),
            Some(EVERY) => Ok(What::Every),
            Some(name) if TypeAction::is_valid_name(name) => Ok(What::Action(name.to_string())),
            Some(name) => Err(format!(
                "{:?} is not an action name: lowercase letters, digits and '-', starting \
                 with a letter, at most {} characters; leave it out for creations, or \
                 give {EVERY:?} for every request",
                // A hostile value is not echoed whole into the answer.
                shown(name, TypeAction::MAX_NAME),
                TypeAction::MAX_NAME
            )),
        }
    }
}
