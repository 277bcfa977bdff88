//! Typed database ids, so a request id is never passed where an asset id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl From<i64> for $name {
            fn from(value: i64) -> Self {
                $name(value)
            }
        }
    };
}

id_type!(
    /// A request for a resource, across all its revisions.
    RequestId
);
id_type!(
    /// A resource recorded in the CMDB.
    AssetId
);
id_type!(
    /// A person or machine account.
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_and_serialize_as_plain_numbers() {
        assert_eq!(RequestId(42).to_string(), "42");
        assert_eq!(
            serde_json::to_string(&AssetId(7)).ok(),
            Some("7".to_string())
        );
        let user: Result<UserId, _> = serde_json::from_str("3");
        assert_eq!(user.ok(), Some(UserId(3)));
        assert!(RequestId(1) < RequestId(2));
    }
}
