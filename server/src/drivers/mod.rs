//! Drivers apply a change set somewhere real. Each must be idempotent: applying the
//! same change set twice has the effect of applying it once.

pub mod gitops;
